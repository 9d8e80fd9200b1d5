/**
 * Every service edgeplane routes, in one list. A service a later milestone implements is
 * listed with `notYetImplemented`, so each of its RPCs answers `unimplemented` naming itself.
 */
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { Service as ClusterService } from "../../proto/gen/api/v1/cluster/service_pb";
import { Service as EnvironmentService } from "../../proto/gen/api/v1/environment/service_pb";
import { Service as GroupService } from "../../proto/gen/api/v1/group/service_pb";
import { Service as ImageService } from "../../proto/gen/api/v1/image/service_pb";
import { Service as ProjectService } from "../../proto/gen/api/v1/project/service_pb";
import { Service as ProjectSettingsService } from "../../proto/gen/api/v1/project/settings/service_pb";
import { Service as RoleService } from "../../proto/gen/api/v1/role/service_pb";
import { EnvironmentAutomationService } from "../../proto/gen/gitpod/v1/environment_automation_pb";
import { EnvironmentService as GitpodEnvironmentService } from "../../proto/gen/gitpod/v1/environment_pb";
import { EventService } from "../../proto/gen/gitpod/v1/event_pb";
import { SkaffoldService } from "../../proto/gen/skaffold/v1/skaffold_pb";
import { authentication } from "./authentication";
import { notYetImplemented, type ServiceEntry } from "./registry";
import { serviceAccounts } from "./service-account";
import { users } from "./user";
import { userSettings } from "./user-settings";

export const services: ServiceEntry[] = [
  // Rig: identity
  authentication,
  users,
  userSettings,
  serviceAccounts,
  // Rig: organization
  notYetImplemented(GroupService),
  notYetImplemented(RoleService),
  notYetImplemented(ProjectService),
  notYetImplemented(ProjectSettingsService),
  notYetImplemented(ClusterService),
  notYetImplemented(EnvironmentService),
  // Rig: capsules, images and rollouts
  notYetImplemented(ImageService),
  notYetImplemented(CapsuleService),
  // Gitpod
  notYetImplemented(GitpodEnvironmentService),
  notYetImplemented(EnvironmentAutomationService),
  notYetImplemented(EventService),
  // Skaffold (served per environment under /environments/<id>/skaffold/)
  notYetImplemented(SkaffoldService),
];

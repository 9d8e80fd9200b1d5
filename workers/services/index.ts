/**
 * Every service edgeplane routes, in one list. Each file declares the access rule of every
 * RPC of its service; services a later milestone implements are `notYetImplemented`, so
 * their rules already apply and each RPC answers `unimplemented` naming itself.
 */
import { authentication } from "./authentication";
import { capsules } from "./capsule";
import { clusters } from "./cluster";
import { environments } from "./environment";
import { gitpodAutomations } from "./gitpod-automation";
import { gitpodEnvironments } from "./gitpod-environment";
import { gitpodEvents } from "./gitpod-event";
import { groups } from "./group";
import { images } from "./image";
import { projects } from "./project";
import { projectSettings } from "./project-settings";
import type { ServiceEntry } from "./registry";
import { roles } from "./role";
import { serviceAccounts } from "./service-account";
import { skaffold } from "./skaffold";
import { users } from "./user";
import { userSettings } from "./user-settings";

export const services: ServiceEntry[] = [
  // Rig: identity
  authentication,
  users,
  userSettings,
  serviceAccounts,
  // Rig: organization
  groups,
  roles,
  projects,
  projectSettings,
  clusters,
  environments,
  // Rig: capsules, images and rollouts
  images,
  capsules,
  // Gitpod
  gitpodEnvironments,
  gitpodAutomations,
  gitpodEvents,
  // Skaffold (served per environment under /environments/<id>/skaffold/)
  skaffold,
];

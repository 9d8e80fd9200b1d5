/** api.v1.project.settings.Service: installation-wide project settings and the license. */
import { Service } from "../../proto/gen/api/v1/project/settings/service_pb";
import { notYetImplemented } from "./registry";

export const projectSettings = notYetImplemented(Service, {
  getSettings: { action: "project:view" },
  updateSettings: { action: "project:edit" },
  getLicenseInfo: { authenticated: true },
});

/** api.v1.image.Service: container images known to a project. */
import { Service } from "../../proto/gen/api/v1/image/service_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const image = scoped<{ imageId?: string; projectId?: string }>("image", "imageId");
const anyImage = scoped("image");

export const images = notYetImplemented(Service, {
  getImageInfo: { action: "image:view", scope: anyImage },
  getRepositoryInfo: { action: "image:view", scope: anyImage },
  get: { action: "image:view", scope: image },
  add: { action: "image:add", scope: anyImage },
  list: { action: "image:view", scope: anyImage },
  delete: { action: "image:delete", scope: image },
});

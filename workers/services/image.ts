/** api.v1.image.Service: container images registered for capsules, and registry look-ups. */
import { fromJsonString, type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { OriginSchema } from "../../proto/gen/api/v1/capsule/image_pb";
import { Service } from "../../proto/gen/api/v1/image/service_pb";
import { scoped } from "../auth/scopes";
import { envOf, principalOf } from "./context";
import { bounded, failedPrecondition, invalidArgument, notFound } from "../core/errors";
import { pageOf } from "../core/pagination";
import { checkDigest, checkRegistry, checkRepository, DOCKER_HUB, formatReference, parseReference } from "../core/image-reference";
import { Registry } from "../images/registry";
import { namedCapsule, requireCapsule } from "../d1/capsules";
import { imageInUse } from "../d1/deployments";
import { addImage, deleteImage, getImage, type ImageRow, listImagesPage } from "../d1/images";
import { defineService } from "./registry";
import { authorOf } from "./user-messages";

const image = scoped<{ imageId?: string; projectId?: string }>("image", "imageId");
const anyImage = scoped("image");


const imageMessage = (r: ImageRow) => ({
  imageId: r.id,
  digest: r.digest,
  repository: r.repository,
  tag: r.tag,
  createdBy: JSON.parse(r.created_by) as ReturnType<typeof authorOf>,
  createdAt: timestampFromMs(r.created_at),
  origin: fromJsonString(OriginSchema, r.origin),
  labels: JSON.parse(r.labels) as Record<string, string>,
});

/** An image id as stored: ids are normalized references, so any spelling of one finds it. */
function imageIdOf(value: string): string {
  if (!value) throw invalidArgument("image_id", "is required");
  return formatReference(parseReference(value, "image_id"));
}

/** Where an image came from, read from the OCI source and revision labels its build set. */
function originOf(labels: Record<string, string>): MessageInitShape<typeof OriginSchema> | undefined {
  const url = labels["org.opencontainers.image.source"];
  if (!url) return undefined;
  const sha = labels["org.opencontainers.image.revision"] ?? "";
  const github = /^https:\/\/github\.com\/[^/]+\/[^/]+?(\.git)?$/.test(url);
  return {
    kind: {
      case: "gitReference",
      value: { repositoryUrl: url, commitSha: sha, commitUrl: github && sha ? `${url.replace(/\.git$/, "")}/commit/${sha}` : "" },
    },
  };
}

export const images = defineService(
  Service,
  {
    getImageInfo: { action: "image:view", scope: anyImage },
    getRepositoryInfo: { action: "image:view", scope: anyImage },
    get: { action: "image:view", scope: image },
    add: { action: "image:add", scope: anyImage },
    list: { action: "image:view", scope: anyImage },
    delete: { action: "image:delete", scope: image },
  },
  {
    async getImageInfo(req) {
      const ref = parseReference(req.image);
      const info = await new Registry(ref.registry).inspect(ref);
      return {
        imageId: { registry: ref.registry, repository: ref.repository, tag: ref.tag, digest: info.digest },
        imageString: req.image,
        createdAt: info.createdAt && timestampFromDate(info.createdAt),
        origin: originOf(info.labels),
      };
    },

    async getRepositoryInfo(req) {
      const registry = req.registry ? checkRegistry("registry", req.registry) : DOCKER_HUB;
      const repository = checkRepository("repository", registry, req.repository);
      const tags = await new Registry(registry).tags(repository);
      // image_created_at stays unset: it costs a manifest and a config fetch per tag, which
      // repositories with hundreds of tags cannot afford within a Worker's subrequest limit.
      // GetImageInfo answers it for one tag.
      return { tags: tags.map((tag) => ({ tag })) };
    },

    async get(req, ctx) {
      const { projectId, capsuleId } = namedCapsule(req);
      const id = imageIdOf(req.imageId);
      const row = await getImage(envOf(ctx), projectId, capsuleId, id);
      if (!row) throw notFound(`image ${bounded(id)} in capsule ${bounded(capsuleId)} of project ${bounded(projectId)}`);
      return { image: imageMessage(row) };
    },

    async add(req, ctx) {
      const env = envOf(ctx);
      const { projectId, capsuleId } = namedCapsule(req);
      let ref = parseReference(req.image);
      if (req.digest && !ref.digest) {
        // Parsed again with the digest, so that `latest` is not assumed for an image pinned by it.
        ref = parseReference(`${req.image.trim()}@${checkDigest("digest", req.digest)}`);
      } else if (req.digest && req.digest !== ref.digest) {
        throw invalidArgument("digest", `${req.digest} differs from the digest in image (${ref.digest})`);
      }
      // Fail on a missing capsule before asking a registry.
      await requireCapsule(env, projectId, capsuleId);
      // Images are immutable: the id pins the digest the tag points to now, so a moved tag
      // makes a new image rather than changing an old one.
      if (!req.skipImageCheck) ref.digest = await new Registry(ref.registry).resolve(ref);
      const id = formatReference(ref);
      const origin = req.origin ? toJsonString(OriginSchema, req.origin) : "{}";
      // A repeated add changes nothing and reports so.
      const { capsuleFound, added } = await addImage(env, {
        projectId,
        capsuleId,
        id,
        ref,
        origin,
        labels: req.labels,
        createdBy: authorOf(principalOf(ctx)),
        now: Date.now(),
      });
      if (!capsuleFound) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
      return { imageId: id, addedNewImage: added };
    },

    async list(req, ctx) {
      const { projectId, capsuleId } = namedCapsule(req);
      const { capsuleFound, rows, total } = await listImagesPage(envOf(ctx), projectId, capsuleId, pageOf(req.pagination));
      if (!capsuleFound) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
      return { images: rows.map(imageMessage), total };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      const { projectId, capsuleId } = namedCapsule(req);
      const id = imageIdOf(req.imageId);
      const where = await imageInUse(env, projectId, capsuleId, id);
      if (where) {
        throw failedPrecondition(`image ${id} is running in capsule ${capsuleId} in environment ${where}: deploy another image there first, then delete this one`);
      }
      if (!(await deleteImage(env, projectId, capsuleId, id))) throw notFound(`image ${bounded(id)} in capsule ${bounded(capsuleId)} of project ${bounded(projectId)}`);
      return {};
    },
  },
);

/** `edgeplane capsule image add|list|delete`: the images a capsule may deploy. */
import { Command } from "@commander-js/extra-typings";
import { AddResponseSchema, ListResponseSchema, Service as ImageService } from "../../../proto/gen/api/v1/image/service_pb";
import { age, printMessage, printTable } from "../output";
import { say } from "../terminal";
import type { Cli } from "./cli";
import { pagination, paginationOptions } from "./pages";

export function imageCommand(cli: Cli) {
  const image = new Command("image").description("a capsule's images");

  image
    .command("add")
    .argument("<capsule>")
    .argument("<image>", "an image reference, e.g. nginx:1.27")
    .option("--skip-image-check", "do not ask the registry about it")
    .action(async (capsuleId, ref, opts) => {
      const session = cli.session();
      const res = await session.client(ImageService).add({ projectId: session.project, capsuleId, image: ref, skipImageCheck: opts.skipImageCheck ?? false });
      printMessage(session.options.output, AddResponseSchema, res, () => say(`${res.addedNewImage ? "Added" : "Already had"} image ${res.imageId}`));
    });

  paginationOptions(image.command("list"))
    .argument("<capsule>")
    .action(async (capsuleId, opts) => {
      const session = cli.session();
      const res = await session.client(ImageService).list({ projectId: session.project, capsuleId, pagination: pagination(opts) });
      printMessage(session.options.output, ListResponseSchema, res, () =>
        printTable(["image", "digest", "age", "by"], res.images.map((i) => [i.imageId, i.digest ? i.digest.slice(0, 19) : "-", age(i.createdAt), i.createdBy?.identifier ?? "-"])),
      );
    });

  image
    .command("delete")
    .argument("<capsule>")
    .argument("<image>", "the image id")
    .action(async (capsuleId, imageId) => {
      const session = cli.session();
      await session.client(ImageService).delete({ projectId: session.project, capsuleId, imageId });
      say(`Image ${imageId} deleted`);
    });

  return image;
}

/**
 * Bundles the CLI's TypeScript (src/ and the generated protos it imports) into
 * dist/edgeplane.mjs with esbuild. bin/edgeplane.mjs calls it whenever the bundle is missing
 * or older than a source, so `npm install` is the only step a user takes.
 */
import { build } from "esbuild";
import { randomUUID } from "node:crypto";
import { readdirSync, renameSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const bundle = join(here, "dist", "edgeplane.mjs");
const sources = [join(here, "src"), resolve(here, "../proto/gen")];

/** The newest modification time of any file below `dir`, in ms. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** Whether the bundle is missing or older than a source file. */
export function stale() {
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return true;
  }
  return sources.some((dir) => newest(dir) > built);
}

/** Builds the bundle; concurrent first runs each write their own file and rename it into place. */
export async function buildBundle() {
  const tmp = `${bundle}.${randomUUID()}.tmp`;
  await build({
    entryPoints: [join(here, "src", "main.ts")],
    outfile: tmp,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // Libraries stay in node_modules: only our own code and the generated protos are bundled.
    packages: "external",
    logLevel: "warning",
  });
  renameSync(tmp, bundle);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildBundle();

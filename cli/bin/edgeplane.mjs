#!/usr/bin/env node
// The `edgeplane` command: (re)builds the bundle when a source changed, then runs it.
import { pathToFileURL } from "node:url";
import { buildBundle, bundle, stale } from "../build.mjs";

if (stale()) await buildBundle();
const { main } = await import(pathToFileURL(bundle).href);
await main(process.argv.slice(2));

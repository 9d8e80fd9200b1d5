/**
 * Which folder may import which (docs/layout.md). Dependencies point one way:
 *
 *   workers/core ← workers/d1 ← {durable-objects, workers/services} ← workers/http ← workers/index.ts
 *
 * The Worker reaches a Durable Object only through durable-objects/contract.ts (the entry
 * module durable-objects/index.ts, which exports the classes for wrangler, is for
 * workers/index.ts alone). runner/, dashboard/ and cli/ are clients: they import generated
 * protos, the shared wire schemas in proto/frames and their own code, nothing of the server.
 * Tests may import anything.
 */

/** Folders of the Worker above d1/ (everything under workers/ but core/ and d1/). */
const WORKER_ABOVE_D1 = "^workers/(?!core/|d1/)";

/** The Worker's bindings (types only), which objects and d1/ are handed. */
const BINDINGS = "^workers/env\\.ts$";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A runtime cycle makes two modules one: neither can be understood, tested or moved alone.",
      from: { pathNot: "^test/" },
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    {
      name: "core-is-pure",
      severity: "error",
      comment: "workers/core/ is pure domain code: it imports only protos, wire schemas and itself.",
      from: { path: "^workers/core/" },
      to: { path: "^(workers/(?!core/)|durable-objects/|runner/|dashboard/|cli/)" },
    },
    {
      name: "d1-below-objects-and-services",
      severity: "error",
      comment: "workers/d1/ holds the D1 queries; it builds on core/ only.",
      from: { path: "^workers/d1/" },
      to: { path: `(${WORKER_ABOVE_D1}|^durable-objects/)`, pathNot: BINDINGS },
    },
    {
      name: "objects-below-worker",
      severity: "error",
      comment: "Durable Objects use core/ and d1/, never the Worker's services, HTTP layer or auth.",
      from: { path: "^durable-objects/" },
      to: { path: WORKER_ABOVE_D1, pathNot: BINDINGS },
    },
    {
      name: "object-lib-is-shared",
      severity: "error",
      comment: "durable-objects/lib/ is what both objects build on (event log, tickets, timers, migrations); it knows neither object.",
      from: { path: "^durable-objects/lib/", pathNot: "\\.test\\.ts$" },
      to: { path: "^durable-objects/(?!lib/)" },
    },
    {
      name: "rollout-below-environment",
      severity: "error",
      comment: "The EnvironmentDO drives RolloutDOs (and reads their types); a RolloutDO reports back over RPC, never by import.",
      from: { path: "^durable-objects/rollout/" },
      to: { path: "^durable-objects/environment/" },
    },
    {
      name: "worker-through-contract",
      severity: "error",
      comment: "The Worker imports from durable-objects/ only its contract.ts (types of stubs, events, phases).",
      from: { path: "^workers/", pathNot: "^workers/index\\.ts$" },
      to: { path: "^durable-objects/", pathNot: "^durable-objects/contract\\.ts$" },
    },
    {
      name: "entry-exports-objects",
      severity: "error",
      comment: "workers/index.ts exports the object classes (wrangler needs them there) and otherwise uses the contract.",
      from: { path: "^workers/index\\.ts$" },
      to: { path: "^durable-objects/", pathNot: "^durable-objects/(contract|index)\\.ts$" },
    },
    {
      name: "services-below-http",
      severity: "error",
      comment: "Connect services are called by the HTTP layer, not the other way round.",
      from: { path: "^(workers/(core|d1|services)/|durable-objects/)" },
      to: { path: "^workers/(http/|index\\.ts$)" },
    },
    {
      name: "clients-only-protocols",
      severity: "error",
      comment: "Clients speak the wire protocols: generated protos and proto/frames, never server code.",
      from: { path: "^(runner|dashboard|cli)/" },
      to: { path: "^(workers/|durable-objects/|migrations/|proto/(?!gen/|frames/))" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(node_modules|dist)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};

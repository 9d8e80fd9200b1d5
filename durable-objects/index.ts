/** The Durable Object classes, exported by the Worker's entry module as wrangler requires. */
export { EnvironmentDO } from "./environment/environment";
export { RolloutDO } from "./rollout/rollout";

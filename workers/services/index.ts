import type { ServiceEntry } from "./registry";

/** Every service edgeplane routes. */
export const services: ServiceEntry[] = [];

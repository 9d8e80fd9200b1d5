import type { Session } from "../session";

/** What every command builder gets: the session of this run, created once the global flags are parsed. */
export interface Cli {
  session(): Session;
}

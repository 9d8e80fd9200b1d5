/** Rig's pagination flags (`--offset`, `--limit`, `--descending`) for list commands. */
import type { Command, OptionValues } from "@commander-js/extra-typings";
import { count } from "./flags";

/** Adds the pagination flags to a list command. */
export function paginationOptions<Args extends unknown[], Opts extends OptionValues>(command: Command<Args, Opts>) {
  return command
    .option("--offset <n>", "skip this many", count)
    .option("--limit <n>", "at most this many (the server's default: 50)", count)
    .option("--descending", "reverse the order");
}

/** The request's Pagination from the flags. */
export const pagination = (opts: { offset?: number; limit?: number; descending?: boolean }) => ({
  offset: opts.offset ?? 0,
  limit: opts.limit ?? 0,
  descending: opts.descending ?? false,
});

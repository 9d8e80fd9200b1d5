/**
 * Reads several queries in one D1 batch (one round trip, one snapshot) with each result typed
 * by its own row type: `DB.batch<T>` gives every statement the same row type, which is what
 * made services cast their results.
 */
import type { Env } from "../env";

/** A SELECT and the row type it yields; the type is the d1/ module's word for the columns it names. */
export interface Query<R> {
  statement: D1PreparedStatement;
  rows(result: D1Result): R[];
}

/** Tags `statement` with the row type `R` of the columns it selects. */
export const query = <R>(statement: D1PreparedStatement): Query<R> => ({ statement, rows: (r) => (r as D1Result<R>).results });

/** `SELECT COUNT(*) AS n …`: the count, for the totals of paged lists. */
export const count = (statement: D1PreparedStatement): Query<{ n: number }> => query(statement);

/** The first row's `n` of a `count` result. */
export const total = (rows: { n: number }[]): bigint => BigInt(rows[0]?.n ?? 0);

export async function readBatch<A, B>(db: D1Database, a: Query<A>, b: Query<B>): Promise<[A[], B[]]>;
export async function readBatch<A, B, C>(db: D1Database, a: Query<A>, b: Query<B>, c: Query<C>): Promise<[A[], B[], C[]]>;
/** Runs the queries in one batch and returns each one's rows, in order. */
export async function readBatch(db: D1Database, ...queries: Query<unknown>[]): Promise<unknown[][]> {
  const results = await db.batch(queries.map((q) => q.statement));
  return queries.map((q, i) => q.rows(results[i]!));
}

/**
 * Runs statements of several d1/ modules as one D1 transaction: how an object commits its
 * summary rows together (a deploy's rollout id, deployment, image and schedules).
 */
export const writeBatch = (env: Env, statements: D1PreparedStatement[]): Promise<D1Result[]> => env.DB.batch(statements);

/** `q` with each row turned into `f(row)`. */
export const mapRows = <R, S>(q: Query<R>, f: (row: R) => S): Query<S> => ({ statement: q.statement, rows: (r) => q.rows(r).map(f) });

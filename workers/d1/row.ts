/**
 * The row type of a D1 table as a raw `prepare(...).first()`/`.all()` returns it, read off the
 * drizzle schema (`schema.ts`): keys are the SQL column names and values what the driver stores
 * (a `mode: "boolean"` column comes back as 0 or 1). A query's row type is `Row<T>` or a `Pick`
 * of it, so a column renamed or retyped in the schema fails to compile where it is read.
 */
import type { Column, Table } from "drizzle-orm";

type Stored<C extends Column> = C["_"]["driverParam"] | (C["_"]["notNull"] extends true ? never : null);

/** Every column of `T`, by its SQL name. */
export type Row<T extends Table> = {
  [K in keyof T["_"]["columns"] as T["_"]["columns"][K]["_"]["name"]]: Stored<T["_"]["columns"][K]>;
};

/** The columns `K` of `T`, for queries that select only some. */
export type Columns<T extends Table, K extends keyof Row<T>> = Pick<Row<T>, K>;

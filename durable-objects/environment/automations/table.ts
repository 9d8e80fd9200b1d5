/**
 * The tables that keep services, tasks and executions as protobuf messages (`id`, `body` and
 * the columns their queries filter on), and what reading them shares.
 */
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { bounded, notFound } from "../../../workers/core/errors";

/** A stored message: its binary encoding. */
type Row = { body: ArrayBuffer };

const decode = <D extends DescMessage>(schema: D, row: Row) => fromBinary(schema, new Uint8Array(row.body));

/** A filter list as the JSON array SQLite's json_each reads. */
export const asJsonList = (v: string[]) => JSON.stringify(v);

/** Spec and status versions: one counter for the environment, so they only grow. */
export function nextVersion(sql: SqlStorage): bigint {
  const row = sql
    .exec<{ value: number }>("INSERT INTO automation_version (singleton, value) VALUES (1, 1) ON CONFLICT DO UPDATE SET value = value + 1 RETURNING value")
    .one();
  return BigInt(row.value);
}

/** A page of a list in this environment: `more` when items follow. */
export interface Page<T> {
  items: T[];
  more: boolean;
}

/** The page of `rows` (fetched one past `limit`) that a list answers. */
export const pageOf = <T>(rows: T[], limit: number): Page<T> => ({ items: rows.slice(0, limit), more: rows.length > limit });

/** A table of messages by id; `noun` names one in not_found. */
export class MessageTable<D extends DescMessage> {
  constructor(
    protected readonly sql: SqlStorage,
    protected readonly table: string,
    protected readonly schema: D,
    private readonly noun: string,
  ) {}

  /** The messages a query of `body` answers. */
  protected select(query: string, ...bindings: SqlStorageValue[]): MessageShape<D>[] {
    return this.sql
      .exec<Row>(query, ...bindings)
      .toArray()
      .map((r) => decode(this.schema, r));
  }

  get(id: string): MessageShape<D> | undefined {
    return this.select(`SELECT body FROM ${this.table} WHERE id = ?`, id)[0];
  }

  require(id: string): MessageShape<D> {
    const item = this.get(id);
    if (!item) throw notFound(`${this.noun} ${bounded(id)}`);
    return item;
  }
}

/** Services and tasks: named by a reference, and made by hand or by an automations file. */
export class AutomationTable<D extends DescMessage> extends MessageTable<D> {
  all(): MessageShape<D>[] {
    return this.select(`SELECT body FROM ${this.table} ORDER BY id`);
  }

  /** `fromFile` undefined: kept as it was (a new row: not from the file). */
  save(item: MessageShape<D> & { id: string; metadata?: { reference: string } }, fromFile?: boolean): void {
    this.sql.exec(
      `INSERT INTO ${this.table} (id, reference, from_file, body) VALUES (?1, ?2, coalesce(?3, 0), ?4)
       ON CONFLICT (id) DO UPDATE SET reference = ?2, from_file = coalesce(?3, from_file), body = ?4`,
      item.id,
      item.metadata!.reference,
      fromFile === undefined ? null : Number(fromFile),
      toBinary(this.schema, item),
    );
  }

  /** Ids of those an automations file made (or took over). */
  fileIds(): Set<string> {
    return new Set(this.sql.exec<{ id: string }>(`SELECT id FROM ${this.table} WHERE from_file = 1`).toArray().map((r) => r.id));
  }

  /** Whether one has the reference `ref`. */
  hasReference(ref: string): boolean {
    return this.sql.exec(`SELECT 1 FROM ${this.table} WHERE reference = ?`, ref).toArray().length > 0;
  }
}

/**
 * What authenticating a request reads, in one batch: the session row (revocation takes
 * effect on the next request), the permissions of the subject's roles (direct and through
 * its groups) and the subject itself.
 */
import type { SubjectType } from "../core/tokens";
import type { Env } from "../env";
import { mapRows, type Query, query, readBatch } from "./batch";
import { permissionsOfQuery } from "./role-assignments";
import { selectServiceAccounts, type ServiceAccountRow } from "./service-accounts";
import { sessionValidityQuery } from "./sessions";
import { selectUsers, type UserRow } from "./users";

/** The row of the subject a session belongs to. */
export type SubjectRow = { type: "user"; row: UserRow } | { type: "service_account"; row: ServiceAccountRow };

/** The rows for session `sessionId` of a subject; each is undefined (or empty) when not found. */
export async function readPrincipal(env: Env, sessionId: string, subject: { type: SubjectType; id: string }) {
  const subjectQuery: Query<SubjectRow> =
    subject.type === "user"
      ? mapRows(query<UserRow>(env.DB.prepare(selectUsers("WHERE u.id = ?")).bind(subject.id)), (row) => ({ type: "user", row }))
      : mapRows(query<ServiceAccountRow>(env.DB.prepare(selectServiceAccounts("WHERE s.id = ?")).bind(subject.id)), (row) => ({
          type: "service_account",
          row,
        }));
  const [sessions, permissions, subjects] = await readBatch(
    env.DB,
    sessionValidityQuery(env, sessionId, subject.id),
    permissionsOfQuery(env, subject.type, subject.id),
    subjectQuery,
  );
  return { session: sessions[0], permissions, subject: subjects[0] };
}

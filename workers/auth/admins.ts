/**
 * An installation must keep at least one administrator. Admin rights come from the
 * predefined `admin` role held directly or through a group; a change that would take the
 * last of them away is refused before it is made.
 */
import type { Env } from "../env";
import { failedPrecondition } from "../http/errors";

/** One way a subject holds the admin role: `via` is the assignment (the subject itself or a group). */
interface AdminPath {
  via_type: string;
  via_id: string;
  admin_id: string;
}

/** What a change removes; paths it matches no longer count. */
export type Removal =
  | { assignment: { type: string; id: string } }
  | { membership: { groupId: string; memberId: string } }
  | { subject: string };

const removes = (r: Removal, p: AdminPath) =>
  "assignment" in r
    ? p.via_type === r.assignment.type && p.via_id === r.assignment.id
    : "membership" in r
      ? p.via_type === "group" && p.via_id === r.membership.groupId && p.admin_id === r.membership.memberId
      : p.admin_id === r.subject;

export async function assertAdminRemains(env: Env, removal: Removal): Promise<void> {
  const { results } = await env.DB.prepare(
    `SELECT a.subject_type AS via_type, a.subject_id AS via_id, COALESCE(m.member_id, a.subject_id) AS admin_id
     FROM role_assignments a LEFT JOIN group_members m ON a.subject_type = 'group' AND m.group_id = a.subject_id
     WHERE a.role_id = 'admin' AND (a.subject_type <> 'group' OR m.member_id IS NOT NULL)`,
  ).all<AdminPath>();
  const before = new Set(results.map((p) => p.admin_id));
  const after = new Set(results.filter((p) => !removes(removal, p)).map((p) => p.admin_id));
  if (before.size > 0 && after.size === 0) {
    throw failedPrecondition("this would remove the last administrator: give another user the admin role first");
  }
}

/** Groups in D1: the columns the API shows of a group. */

/** A group with its member count, as `selectGroups` reads it. */
export interface GroupRow {
  id: string;
  metadata: string;
  created_at: number;
  updated_at: number;
  num_members: number;
}

/** Groups with their member counts; `rest` is the WHERE/ORDER/LIMIT part. */
export const selectGroups = (rest: string) =>
  `SELECT g.id, g.metadata, g.created_at, g.updated_at,
     (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS num_members FROM groups g ${rest}`;

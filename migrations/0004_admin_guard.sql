-- Who holds the admin role, and through what: the assignment itself (a user or service
-- account) or a group it belongs to.
CREATE VIEW `admin_paths` AS
  SELECT a.subject_type AS via_type, a.subject_id AS via_id, COALESCE(m.member_id, a.subject_id) AS admin_id
  FROM role_assignments a LEFT JOIN group_members m ON a.subject_type = 'group' AND m.group_id = a.subject_id
  WHERE a.role_id = 'admin' AND (a.subject_type <> 'group' OR m.member_id IS NOT NULL);
--> statement-breakpoint
-- Never holds a row: a batch that would leave users without any admin ends with an insert
-- here that fails this check, which rolls the whole batch back.
CREATE TABLE `admin_guard` (`ok` integer NOT NULL CONSTRAINT `an_admin_must_remain` CHECK (`ok` = 1));

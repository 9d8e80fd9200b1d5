CREATE TABLE `cron_schedules` (
	`environment_id` text NOT NULL,
	`project_id` text NOT NULL,
	`capsule_id` text NOT NULL,
	`job_name` text NOT NULL,
	`next_run_at` integer,
	PRIMARY KEY(`environment_id`, `project_id`, `capsule_id`, `job_name`)
);
--> statement-breakpoint
CREATE INDEX `cron_schedules_due` ON `cron_schedules` (`next_run_at`);
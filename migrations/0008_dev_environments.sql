CREATE TABLE `dev_environments` (
	`id` text PRIMARY KEY NOT NULL,
	`creator_id` text NOT NULL,
	`project_id` text DEFAULT '' NOT NULL,
	`runner_id` text DEFAULT '' NOT NULL,
	`phase` text NOT NULL,
	`archive_at` integer,
	`revision` integer NOT NULL,
	`environment` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `dev_environments_phase` ON `dev_environments` (`phase`);
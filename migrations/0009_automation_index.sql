CREATE TABLE `automation_index` (
	`id` text PRIMARY KEY NOT NULL,
	`environment_id` text NOT NULL,
	`kind` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `automation_index_kind` ON `automation_index` (`kind`,`environment_id`);--> statement-breakpoint
CREATE INDEX `automation_index_environment` ON `automation_index` (`environment_id`);
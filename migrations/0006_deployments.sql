CREATE TABLE `deployments` (
	`project_id` text NOT NULL,
	`capsule_id` text NOT NULL,
	`environment_id` text NOT NULL,
	`rollout_id` integer NOT NULL,
	`image_id` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`project_id`, `capsule_id`, `environment_id`)
);
--> statement-breakpoint
CREATE INDEX `deployments_image` ON `deployments` (`project_id`,`capsule_id`,`image_id`);
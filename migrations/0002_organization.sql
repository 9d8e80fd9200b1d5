CREATE TABLE `docker_registries` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`host` text NOT NULL,
	`secret` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `docker_registries_project_host` ON `docker_registries` (`project_id`,`host`);--> statement-breakpoint
CREATE TABLE `environment_projects` (
	`environment_id` text NOT NULL,
	`project_id` text NOT NULL,
	PRIMARY KEY(`environment_id`, `project_id`)
);
--> statement-breakpoint
CREATE INDEX `environment_projects_project` ON `environment_projects` (`project_id`);--> statement-breakpoint
CREATE TABLE `environments` (
	`id` text PRIMARY KEY NOT NULL,
	`cluster_id` text NOT NULL,
	`namespace_template` text NOT NULL,
	`is_default` integer DEFAULT false NOT NULL,
	`ephemeral` integer DEFAULT false NOT NULL,
	`global` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `projects` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text DEFAULT '' NOT NULL,
	`installation_id` text NOT NULL,
	`public_key` text NOT NULL,
	`private_key` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);

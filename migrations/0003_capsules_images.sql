CREATE TABLE `capsules` (
	`project_id` text NOT NULL,
	`id` text NOT NULL,
	`updated_by` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`project_id`, `id`)
);
--> statement-breakpoint
CREATE TABLE `images` (
	`project_id` text NOT NULL,
	`capsule_id` text NOT NULL,
	`id` text NOT NULL,
	`repository` text NOT NULL,
	`tag` text DEFAULT '' NOT NULL,
	`digest` text DEFAULT '' NOT NULL,
	`origin` text DEFAULT '{}' NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`created_by` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`project_id`, `capsule_id`, `id`)
);

CREATE TABLE `rollout_counters` (
	`project_id` text NOT NULL,
	`capsule_id` text NOT NULL,
	`last_id` integer NOT NULL,
	PRIMARY KEY(`project_id`, `capsule_id`)
);

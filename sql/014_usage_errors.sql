-- The answers of each key and day that were errors (a status of 400 or
-- more, refusals of the limits aside), beside its requests and refusals:
-- each worker counts them and adds them here every second.

ALTER TABLE usage_daily ADD COLUMN errors bigint NOT NULL DEFAULT 0;

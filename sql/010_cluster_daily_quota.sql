-- Daily quotas exchanged in cluster mode: beside the tokens it took from
-- a bucket, each node tells the others how many requests of the bucket's
-- daily quota it admitted on a UTC day, so that a quota holds across the
-- nodes with the same bound as the tokens.

ALTER TABLE limit_consumption
    ADD COLUMN day date,
    ADD COLUMN daily bigint NOT NULL DEFAULT 0;

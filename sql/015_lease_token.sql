-- Each claim of a job gets a token of its own, and a worker ends a job
-- only while the job is still leased under the token of its claim.  The
-- lease owner (host/pid) is no such token: a worker whose lease expired
-- may claim the same job again, and the late outcome of its first claim
-- would then end the second.  The owner stays, to tell who holds a job.

ALTER TABLE jobs ADD COLUMN lease_token uuid;

-- Indexes of the queue as it grows to tens of thousands of jobs a run.
--
-- A claim takes, per provider, the due jobs of its models in order: an
-- index by model and due time, of the jobs that can be claimed, gives
-- them without reading the rest (expired leases are put back to 'queued'
-- by the workers, so a claim never looks at leased jobs).
--
-- The jobs of a run not yet ended, by (run, domain): every job's end asks
-- whether others of its (run, domain) wait, and the check after it
-- whether any of its run or domain is left.  Without this index each of
-- those reads every job of the run.

DROP INDEX jobs_claimable;

CREATE INDEX jobs_claim ON jobs (model_id, not_before, id)
    WHERE status IN ('queued', 'failed');

CREATE INDEX jobs_open ON jobs (run_id, domain_id)
    WHERE status IN ('queued', 'leased', 'failed');

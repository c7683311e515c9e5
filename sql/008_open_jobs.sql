-- The jobs of a run not yet ended, by (run, domain): every job's end asks
-- whether others of its (run, domain) wait, and the check after it
-- whether any of its run or domain is left.  Without this index each of
-- those reads every job of the run, which grows with the run's size.

CREATE INDEX jobs_open ON jobs (run_id, domain_id)
    WHERE status IN ('queued', 'leased', 'failed');

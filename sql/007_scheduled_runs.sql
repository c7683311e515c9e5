-- Scheduled runs: one per window of the schedule, whichever node's worker
-- asks first.  The window is named by the second it starts at (windows
-- are aligned to the Unix epoch), and unique among scheduled runs, so the
-- nodes of a cluster cannot make two runs of the same window.

ALTER TABLE runs ADD COLUMN schedule_slot bigint;

CREATE UNIQUE INDEX runs_schedule_slot ON runs (schedule_slot)
    WHERE kind = 'scheduled';

-- A writer of many score rows may tell the nodes itself, once for many
-- rows, instead of once per statement: each notifying transaction holds
-- PostgreSQL's notification lock until its commit is flushed, so a
-- crawl's scorers committing one domain each would otherwise commit one
-- at a time.  Such a writer sets dr.notify_scores to 'off' in its
-- transaction; every other writer (a rescore by hand, an operator) still
-- tells the nodes as before.

CREATE OR REPLACE FUNCTION dr_notify_scores() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('dr.notify_scores', true), '') <> 'off' THEN
        PERFORM pg_notify('dr_scores', TG_OP);
    END IF;
    RETURN NULL;
END
$$;

-- Adding or retiring domains changes what the API answers (counts,
-- rankings, categories): the nodes drop their cached answers as they do
-- for new scores.

CREATE TRIGGER domains_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION dr_notify_scores();

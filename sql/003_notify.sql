-- Every write of scores tells the nginx nodes, which drop their cached
-- answers: whoever writes them (the scorer, a rescore, an operator), and
-- only once the transaction commits.

CREATE FUNCTION dr_notify_scores() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dr_scores', TG_OP);
    RETURN NULL;
END
$$;

CREATE TRIGGER domain_scores_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domain_scores
    FOR EACH STATEMENT EXECUTE FUNCTION dr_notify_scores();

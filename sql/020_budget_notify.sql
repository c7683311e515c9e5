-- Every change of the budgets tells the nginx nodes: a worker that knows
-- no budget applies to a provider calls it without a reservation's round
-- trip, and must learn at once of a budget made on any node.

CREATE FUNCTION dr_notify_budgets() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dr_budgets', TG_OP);
    RETURN NULL;
END
$$;

CREATE TRIGGER budgets_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON budgets
    FOR EACH STATEMENT EXECUTE FUNCTION dr_notify_budgets();


-- A budget removed no longer keeps a run waiting: the reservation that
-- would have said so is no longer made when no budget applies.

CREATE FUNCTION dr_budget_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE runs SET budget_exhausted = NULL
    WHERE budget_exhausted = OLD.scope || '/' || OLD.period;
    RETURN NULL;
END
$$;

CREATE TRIGGER budgets_removed
    AFTER DELETE ON budgets
    FOR EACH ROW EXECUTE FUNCTION dr_budget_removed();

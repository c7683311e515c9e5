-- Spend budgets: caps in US dollars on what the provider calls cost, for
-- every provider together ("global") or one ("provider:NAME"), per UTC
-- hour, day or month.  A call reserves what it could cost before it
-- leaves (its prompt and the longest answer asked for, at the model's
-- price) in every budget that applies, all or none, and settles to what
-- it did cost when it returns; the spend lives here, where every node
-- sees it.  Amounts are micro-dollars (10^-6 USD) in integers, as the
-- cost of each answer is computed.

-- what an operator set (POST /admin/budgets); a dr_budget directive of
-- the same scope and period is only a default that a row here overrides
CREATE TABLE budgets (
    scope       text NOT NULL
                CHECK (scope = 'global'
                       OR scope ~ '^provider:[a-z0-9][a-z0-9_.-]{0,63}$'),
    period      text NOT NULL CHECK (period IN ('hour', 'day', 'month')),
    usd         numeric(16, 6) NOT NULL CHECK (usd >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, period)
);

-- the spend of each budget's windows: settled, and reserved by the calls
-- under way; a row is made by the first call of its window
CREATE TABLE budget_spend (
    scope         text NOT NULL,
    period        text NOT NULL,
    window_start  timestamptz NOT NULL,
    spent         bigint NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved      bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (scope, period, window_start)
);

-- one call's reservation, a row per budget it holds: settled by the call,
-- or, if its worker died, spent in full when it expires (the call may
-- have been made and billed)
CREATE SEQUENCE budget_hold_seq;

CREATE TABLE budget_holds (
    hold          bigint NOT NULL,
    scope         text NOT NULL,
    period        text NOT NULL,
    window_start  timestamptz NOT NULL,
    amount        bigint NOT NULL CHECK (amount >= 0),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (hold, scope, period)
);

CREATE INDEX budget_holds_expires ON budget_holds (expires_at);

-- the budget that keeps a run's jobs waiting ("global/day"), until one of
-- its calls may go again
ALTER TABLE runs ADD COLUMN budget_exhausted text;


-- The window a period is in now, in UTC whatever the session's time zone.

CREATE FUNCTION dr_budget_window(p_period text,
    OUT window_start timestamptz, OUT window_end timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT w AT TIME ZONE 'UTC',
           (w + ('1 ' || p_period)::interval) AT TIME ZONE 'UTC'
    FROM date_trunc(p_period, now() AT TIME ZONE 'UTC') AS w
$$;


-- The budgets in force: the rows of budgets, and the defaults of the
-- configuration (dr_budget) that no row overrides.

CREATE FUNCTION dr_budget_limits(p_scopes text[], p_periods text[],
    p_usd numeric[])
RETURNS TABLE (scope text, period text, usd numeric, source text)
LANGUAGE sql STABLE AS $$
    SELECT b.scope, b.period, b.usd, 'database' FROM budgets b
    UNION ALL
    SELECT c.scope, c.period, c.usd, 'configuration'
    FROM unnest(p_scopes, p_periods, p_usd) AS c(scope, period, usd)
    WHERE NOT EXISTS (SELECT 1 FROM budgets b
                      WHERE b.scope = c.scope AND b.period = c.period)
$$;


-- What the answers stored since a window began cost, in micro-dollars: a
-- budget made in the middle of its window starts from what was already
-- spent in it, not from nothing.

CREATE FUNCTION dr_budget_stored(p_scope text, p_from timestamptz)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(round(sum(r.cost) * 1000000), 0)::bigint
    FROM responses r JOIN models m ON m.id = r.model_id
    WHERE r.captured_at >= p_from
      AND (p_scope = 'global' OR 'provider:' || m.provider = p_scope)
$$;


-- A call's reservation of p_amount in every budget that applies to its
-- provider, all or none.  The budgets' rows are locked in the order of
-- (scope, period, window_start), as every statement here locks them, so
-- that reservations and settlements of many calls and nodes at once
-- never deadlock, and each is checked under its lock: never overspent.
-- Returns the hold (NULL when no budget applies), or the first budget
-- without room.  A run's jobs say which budget keeps them waiting.

CREATE FUNCTION dr_budget_reserve(p_provider text, p_amount bigint,
    p_ttl_ms integer, p_run bigint, p_scopes text[], p_periods text[],
    p_usd numeric[],
    OUT hold bigint, OUT refused_scope text, OUT refused_period text,
    OUT refused_usd numeric)
LANGUAGE plpgsql AS $$
DECLARE
    i        integer;
    a_scope  text[];
    a_period text[];
    a_usd    numeric[];
    a_start  timestamptz[];
BEGIN
    SELECT array_agg(l.scope ORDER BY l.scope, l.period),
           array_agg(l.period ORDER BY l.scope, l.period),
           array_agg(l.usd ORDER BY l.scope, l.period),
           array_agg(w.window_start ORDER BY l.scope, l.period)
    INTO a_scope, a_period, a_usd, a_start
    FROM dr_budget_limits(p_scopes, p_periods, p_usd) l,
         dr_budget_window(l.period) w
    WHERE l.scope IN ('global', 'provider:' || p_provider);

    FOR i IN 1 .. coalesce(cardinality(a_scope), 0) LOOP
        IF NOT EXISTS (SELECT 1 FROM budget_spend s
                       WHERE s.scope = a_scope[i]
                         AND s.period = a_period[i]
                         AND s.window_start = a_start[i])
        THEN
            INSERT INTO budget_spend (scope, period, window_start, spent)
            VALUES (a_scope[i], a_period[i], a_start[i],
                    dr_budget_stored(a_scope[i], a_start[i]))
            ON CONFLICT DO NOTHING;
        END IF;
    END LOOP;

    IF a_scope IS NOT NULL THEN
        PERFORM 1
        FROM budget_spend s
        JOIN unnest(a_scope, a_period, a_start) AS a(scope, period, ws)
            ON s.scope = a.scope AND s.period = a.period
           AND s.window_start = a.ws
        ORDER BY s.scope, s.period, s.window_start
        FOR UPDATE OF s;

        SELECT a.scope, a.period, a.usd
        INTO refused_scope, refused_period, refused_usd
        FROM budget_spend s
        JOIN unnest(a_scope, a_period, a_usd, a_start)
            AS a(scope, period, usd, ws)
            ON s.scope = a.scope AND s.period = a.period
           AND s.window_start = a.ws
        WHERE s.spent + s.reserved + p_amount
              > round(a.usd * 1000000)::bigint
        ORDER BY s.scope, s.period
        LIMIT 1;

        IF refused_scope IS NOT NULL THEN
            UPDATE runs SET budget_exhausted = refused_scope || '/'
                                               || refused_period
            WHERE id = p_run AND status IN ('queued', 'running')
              AND budget_exhausted IS DISTINCT FROM
                  refused_scope || '/' || refused_period;
            RETURN;
        END IF;

        UPDATE budget_spend s SET reserved = s.reserved + p_amount
        FROM unnest(a_scope, a_period, a_start) AS a(scope, period, ws)
        WHERE s.scope = a.scope AND s.period = a.period
          AND s.window_start = a.ws;

        hold := nextval('budget_hold_seq');

        INSERT INTO budget_holds
        SELECT hold, a.scope, a.period, a.ws, p_amount,
               now() + p_ttl_ms * interval '1 millisecond'
        FROM unnest(a_scope, a_period, a_start) AS a(scope, period, ws);
    END IF;

    UPDATE runs SET budget_exhausted = NULL
    WHERE id = p_run AND budget_exhausted IS NOT NULL;
END
$$;


-- The end of a call: its hold gives way to what it cost.  A hold already
-- gone (it expired and was spent in full) changes nothing.

CREATE FUNCTION dr_budget_settle(p_hold bigint, p_cost bigint)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM budget_spend s JOIN budget_holds h
        USING (scope, period, window_start)
    WHERE h.hold = p_hold
    ORDER BY s.scope, s.period, s.window_start
    FOR UPDATE OF s;

    WITH h AS (
        DELETE FROM budget_holds WHERE hold = p_hold
        RETURNING scope, period, window_start, amount)
    UPDATE budget_spend s
    SET reserved = greatest(s.reserved - h.amount, 0),
        spent = s.spent + p_cost
    FROM h
    WHERE s.scope = h.scope AND s.period = h.period
      AND s.window_start = h.window_start;
END
$$;


-- Holds whose call never settled (its worker died): spent in full.

CREATE FUNCTION dr_budget_expire() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM budget_spend s JOIN budget_holds h
        USING (scope, period, window_start)
    WHERE h.expires_at < now()
    ORDER BY s.scope, s.period, s.window_start
    FOR UPDATE OF s;

    WITH h AS (
        DELETE FROM budget_holds WHERE expires_at < now()
        RETURNING scope, period, window_start, amount),
    t AS (
        SELECT scope, period, window_start, sum(amount) AS amount
        FROM h GROUP BY 1, 2, 3)
    UPDATE budget_spend s
    SET reserved = greatest(s.reserved - t.amount, 0),
        spent = s.spent + t.amount
    FROM t
    WHERE s.scope = t.scope AND s.period = t.period
      AND s.window_start = t.window_start;
END
$$;


-- Every budget in force with its current window: what was spent in it,
-- what the calls under way hold, in micro-dollars.  Expired holds are
-- spent first.

CREATE FUNCTION dr_budget_state(p_scopes text[], p_periods text[],
    p_usd numeric[])
RETURNS TABLE (scope text, period text, usd numeric, source text,
    window_start timestamptz, window_end timestamptz, limit_micro bigint,
    spent bigint, reserved bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dr_budget_expire();

    RETURN QUERY
    SELECT l.scope, l.period, l.usd, l.source, w.window_start, w.window_end,
           round(l.usd * 1000000)::bigint,
           coalesce(s.spent, dr_budget_stored(l.scope, w.window_start)),
           coalesce(s.reserved, 0::bigint)
    FROM dr_budget_limits(p_scopes, p_periods, p_usd) l
    CROSS JOIN LATERAL dr_budget_window(l.period) w
    LEFT JOIN budget_spend s ON s.scope = l.scope AND s.period = l.period
                            AND s.window_start = w.window_start
    ORDER BY l.scope, array_position(ARRAY['hour', 'day', 'month'],
                                     l.period);
END
$$;

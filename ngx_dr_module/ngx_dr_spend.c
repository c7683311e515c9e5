
/*
 * Domain Runner: GET and POST /admin/budgets, the spend budgets and what
 * was spent in their current windows.
 *
 * A budget set here is a row of the budgets table, which every node reads
 * at each call's reservation (ngx_dr_budget.c): a raised budget lets the
 * runs it kept waiting go on by themselves, on every node.  The defaults
 * of the configuration (dr_budget) are listed with "source":
 * "configuration" until a row of the same scope and period overrides
 * them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <math.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_budget.h"
#include "ngx_dr_spend.h"


#define NGX_DR_BUDGETS_ISO_TIME  "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

/* the columns of both statements */
#define NGX_DR_BUDGETS_SCOPE     0
#define NGX_DR_BUDGETS_PERIOD    1
#define NGX_DR_BUDGETS_USD       2
#define NGX_DR_BUDGETS_SOURCE    3
#define NGX_DR_BUDGETS_START     4
#define NGX_DR_BUDGETS_END       5
#define NGX_DR_BUDGETS_LIMIT     6
#define NGX_DR_BUDGETS_SPENT     7
#define NGX_DR_BUDGETS_RESERVED  8


static ngx_int_t ngx_dr_spend_listed(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_spend_stored(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static int64_t ngx_dr_spend_usd(json_t *v);
static json_t *ngx_dr_spend_row(PGresult *res, int row);


static const char  ngx_dr_spend_list_sql[] =
    "SELECT scope, period, usd::float8, source,"
    " to_char(window_start AT TIME ZONE 'UTC', " NGX_DR_BUDGETS_ISO_TIME "),"
    " to_char(window_end AT TIME ZONE 'UTC', " NGX_DR_BUDGETS_ISO_TIME "),"
    " limit_micro, spent, reserved "
    "FROM dr_budget_state($1, $2, $3)";

/* a provider's budget needs a provider of the models */
static const char  ngx_dr_spend_set_sql[] =
    "WITH b AS ("
    " INSERT INTO budgets (scope, period, usd)"
    " SELECT $1, $2, $3::numeric"
    " WHERE $1 = 'global'"
    "  OR EXISTS (SELECT 1 FROM models WHERE 'provider:' || provider = $1)"
    " ON CONFLICT (scope, period) DO UPDATE"
    " SET usd = EXCLUDED.usd, updated_at = now()"
    " RETURNING scope, period, usd),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    " SELECT $4, $5, 'budget.set', b.scope || '/' || b.period,"
    "  jsonb_build_object('usd', b.usd) FROM b) "
    "SELECT b.scope, b.period, b.usd::float8, 'database',"
    " to_char(w.window_start AT TIME ZONE 'UTC', " NGX_DR_BUDGETS_ISO_TIME
    "),"
    " to_char(w.window_end AT TIME ZONE 'UTC', " NGX_DR_BUDGETS_ISO_TIME "),"
    " round(b.usd * 1000000)::int8,"
    " coalesce(s.spent, dr_budget_stored(b.scope, w.window_start)),"
    " coalesce(s.reserved, 0) "
    "FROM b CROSS JOIN LATERAL dr_budget_window(b.period) w"
    " LEFT JOIN budget_spend s ON s.scope = b.scope AND s.period = b.period"
    "  AND s.window_start = w.window_start";


/* GET /admin/budgets */

ngx_int_t
ngx_dr_spend_list(ngx_http_request_t *r)
{
    const char  *params[3];

    ngx_dr_budget_defaults(params);

    return ngx_dr_http_query(r, 0, 0, ngx_dr_spend_list_sql, 3, params,
                             ngx_dr_spend_listed);
}


/* POST /admin/budgets {scope, period, usd} */

ngx_int_t
ngx_dr_spend_set(ngx_http_request_t *r, json_t *body)
{
    u_char      *p;
    json_t      *scope, *period;
    int64_t      usd;
    ngx_int_t    rc;
    const char  *params[5];

    rc = ngx_dr_http_fields(r, body, "scope, period, usd");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    scope = json_object_get(body, "scope");
    period = json_object_get(body, "period");

    if (!json_is_string(scope)
        || ngx_dr_budget_scope((u_char *) json_string_value(scope),
                               json_string_length(scope))
           != NGX_OK)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "scope: \"global\" or \"provider:NAME\" "
                                 "is needed");
    }

    if (!json_is_string(period)
        || ngx_dr_budget_period((u_char *) json_string_value(period),
                                json_string_length(period))
           == NGX_ERROR)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "period: hour, day or month is needed");
    }

    usd = ngx_dr_spend_usd(json_object_get(body, "usd"));

    if (usd < 0) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "usd: a number of dollars from 0 to %d "
                                 "with at most six decimals is needed",
                                 NGX_DR_BUDGET_USD_MAX);
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 8);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_sprintf(p, "%L.%06L%Z", usd / 1000000, usd % 1000000);

    params[0] = json_string_value(scope);
    params[1] = json_string_value(period);
    params[2] = (const char *) p;

    if (ngx_dr_request_actor(r, &params[3]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_spend_set_sql, 5, params,
                             ngx_dr_spend_stored);
}


static ngx_int_t
ngx_dr_spend_listed(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    int      i;
    json_t  *list;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    list = json_array();

    for (i = 0; list && i < PQntuples(q->res); i++) {
        json_array_append_new(list, ngx_dr_spend_row(q->res, i));
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:o}", "budgets", list));
}


static ngx_int_t
ngx_dr_spend_stored(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "scope: no model of the database is of "
                                 "this provider");
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK, ngx_dr_spend_row(q->res, 0));
}


/*
 * Dollars as micro-dollars: a JSON number from 0 to NGX_DR_BUDGET_USD_MAX
 * with at most six decimals; -1 for anything else.
 */

static int64_t
ngx_dr_spend_usd(json_t *v)
{
    double  usd, micro;

    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0
            || json_integer_value(v) > NGX_DR_BUDGET_USD_MAX)
        {
            return -1;
        }

        return (int64_t) json_integer_value(v) * 1000000;
    }

    if (!json_is_real(v)) {
        return -1;
    }

    usd = json_real_value(v);

    if (!(usd >= 0 && usd <= NGX_DR_BUDGET_USD_MAX)) {
        return -1;
    }

    /* a seventh decimal is refused; a double's own error is not one */

    micro = floor(usd * 1e6 + 0.5);

    if (fabs(usd * 1e6 - micro) > 1e-3 + micro * 1e-12) {
        return -1;
    }

    return (int64_t) micro;
}


/* a budget in its current window, in dollars */

static json_t *
ngx_dr_spend_row(PGresult *res, int row)
{
    int64_t  limit, spent, reserved, left;

    limit = strtoll(PQgetvalue(res, row, NGX_DR_BUDGETS_LIMIT), NULL, 10);
    spent = strtoll(PQgetvalue(res, row, NGX_DR_BUDGETS_SPENT), NULL, 10);
    reserved = strtoll(PQgetvalue(res, row, NGX_DR_BUDGETS_RESERVED), NULL,
                       10);
    left = limit - spent - reserved;

    return json_pack("{s:s, s:s, s:f, s:s, s:s, s:s, s:f, s:f, s:f}",
                     "scope", PQgetvalue(res, row, NGX_DR_BUDGETS_SCOPE),
                     "period", PQgetvalue(res, row, NGX_DR_BUDGETS_PERIOD),
                     "usd", strtod(PQgetvalue(res, row, NGX_DR_BUDGETS_USD),
                                   NULL),
                     "source", PQgetvalue(res, row, NGX_DR_BUDGETS_SOURCE),
                     "window_start",
                     PQgetvalue(res, row, NGX_DR_BUDGETS_START),
                     "window_end", PQgetvalue(res, row, NGX_DR_BUDGETS_END),
                     "spent", spent / 1e6,
                     "reserved", reserved / 1e6,
                     "remaining", left > 0 ? left / 1e6 : 0.0);
}

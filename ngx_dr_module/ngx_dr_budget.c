
/*
 * Domain Runner: spend budgets.
 *
 * A budget caps what the provider calls cost, for every provider together
 * ("global") or one ("provider:NAME"), per UTC hour, day or month.  The
 * spend lives in PostgreSQL, where every node sees it (sql/013_budgets.sql
 * holds the arithmetic): before a call leaves, it reserves what it could
 * cost in every budget that applies, all or none, under the budgets' row
 * locks; when it returns, it settles to what it did cost.  So however many
 * calls are in flight on however many nodes, what was spent and what is
 * reserved never pass a budget.  A call that finds no room is not sent.
 *
 * A reservation whose call never settles (its worker was killed) expires
 * after NGX_DR_BUDGET_HOLD_TTL and is then spent in full, since the call
 * may have been made and billed; worker 0 of every node expires them when
 * it reads the budgets' figures for the scrape, every few seconds.
 *
 * Most calls fall under no budget.  Each worker that calls providers
 * keeps the scopes of the budgets table, read again whenever the table
 * changes (a notification, sql/020_budget_notify.sql); a call that no
 * budget of the table or of the configuration applies to goes without
 * the reservation's round trip.  While the worker does not know (the
 * list is being read, or its listening connection is lost, so that a
 * change could go unheard), every call reserves.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_periodic.h"
#include "ngx_dr_budget.h"


/* a reservation outlives any call: a token's wait, then the call itself */
#define NGX_DR_BUDGET_HOLD_TTL     300000
#define NGX_DR_BUDGET_INTERVAL     5000

/* the list of the table's scopes is read again after a failure */
#define NGX_DR_BUDGET_RELOAD       1000

/* the columns of ngx_dr_budget_reserve_sql */
#define NGX_DR_BUDGET_HOLD         0
#define NGX_DR_BUDGET_SCOPE        1
#define NGX_DR_BUDGET_PERIOD       2
#define NGX_DR_BUDGET_USD          3


static void ngx_dr_budget_reserved(ngx_dr_pg_query_t *q);
static void ngx_dr_budget_settled(ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_budget_refresh_start(ngx_dr_periodic_t *job,
    ngx_pool_t *pool);
static void ngx_dr_budget_refreshed(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static u_char *ngx_dr_budget_array(ngx_pool_t *pool, ngx_array_t *budgets,
    ngx_uint_t what);
static ngx_uint_t ngx_dr_budget_applies(ngx_str_t *provider);
static void ngx_dr_budget_changed(ngx_str_t *channel, ngx_str_t *payload,
    void *data);
static void ngx_dr_budget_load(void);
static void ngx_dr_budget_loaded(ngx_dr_pg_query_t *q);
static void ngx_dr_budget_reload(ngx_event_t *ev);


ngx_str_t  ngx_dr_budget_periods[] = {
    ngx_string("hour"),
    ngx_string("day"),
    ngx_string("month"),
    ngx_null_string
};


static const char  ngx_dr_budget_reserve_sql[] =
    "SELECT hold, refused_scope, refused_period, refused_usd "
    "FROM dr_budget_reserve($1, $2, $3, $4, $5, $6, $7)";

static const char  ngx_dr_budget_settle_sql[] =
    "SELECT dr_budget_settle($1, $2)";

static const char  ngx_dr_budget_scopes_sql[] =
    "SELECT DISTINCT scope FROM budgets";

static const char  ngx_dr_budget_state_sql[] =
    "SELECT scope, period, limit_micro, spent, reserved "
    "FROM dr_budget_state($1, $2, $3)";


/* the defaults of the configuration, as the statements' three arrays */
static const char         *ngx_dr_budget_params[3] = { "{}", "{}", "{}" };
static ngx_dr_periodic_t   ngx_dr_budget_refresh;

/* what this worker knows of the budgets in force */
static ngx_array_t        *ngx_dr_budget_conf;     /* dr_budget; or NULL */
static ngx_array_t        *ngx_dr_budget_table;    /* of ngx_str_t */
static ngx_pool_t         *ngx_dr_budget_table_pool;
static ngx_uint_t          ngx_dr_budget_known;    /* the table's, as now */
static ngx_uint_t          ngx_dr_budget_loading;
static ngx_uint_t          ngx_dr_budget_again;    /* changed meanwhile */
static ngx_event_t         ngx_dr_budget_timer;


/* dr_budget scope=global|provider:NAME period=hour|day|month usd=N */

char *
ngx_dr_budget(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_array_t  **budgets = (ngx_array_t **) ((char *) conf + cmd->offset);

    ngx_int_t         n;
    ngx_str_t        *value, v;
    ngx_uint_t        i;
    ngx_dr_budget_t  *b, *other;

    if (*budgets == NULL) {
        *budgets = ngx_array_create(cf->pool, 4, sizeof(ngx_dr_budget_t));
        if (*budgets == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    b = ngx_array_push(*budgets);
    if (b == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(b, sizeof(ngx_dr_budget_t));
    b->period = NGX_CONF_UNSET_UINT;
    b->usd = -1;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "scope=", 6) == 0) {
            b->scope.data = value[i].data + 6;
            b->scope.len = value[i].len - 6;

            if (ngx_dr_budget_scope(b->scope.data, b->scope.len) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"dr_budget\": scope is \"global\" or "
                                   "\"provider:NAME\", not \"%V\"",
                                   &b->scope);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "period=", 7) == 0) {
            n = ngx_dr_budget_period(value[i].data + 7, value[i].len - 7);

            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"dr_budget\": period is hour, day or "
                                   "month, not \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            b->period = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "usd=", 4) == 0) {
            v.data = value[i].data + 4;
            v.len = value[i].len - 4;

            /* dollars with at most six decimals: exact micro-dollars */
            n = ngx_atofp(v.data, v.len, 6);

            if (n == NGX_ERROR
                || n > (ngx_int_t) NGX_DR_BUDGET_USD_MAX * 1000000)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"dr_budget\": usd is an amount of "
                                   "dollars from 0 to %d with at most six "
                                   "decimals, not \"%V\"",
                                   NGX_DR_BUDGET_USD_MAX, &v);
                return NGX_CONF_ERROR;
            }

            b->usd = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_budget\": unknown parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (b->scope.len == 0 || b->period == NGX_CONF_UNSET_UINT || b->usd < 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_budget\" needs scope=, period= and usd=");
        return NGX_CONF_ERROR;
    }

    other = (*budgets)->elts;

    for (i = 0; i + 1 < (*budgets)->nelts; i++) {
        if (other[i].period == b->period
            && other[i].scope.len == b->scope.len
            && ngx_strncmp(other[i].scope.data, b->scope.data, b->scope.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"dr_budget\" of %V per %V is duplicate",
                               &b->scope, &ngx_dr_budget_periods[b->period]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* "global", or "provider:" and a provider's name as the models name it */

ngx_int_t
ngx_dr_budget_scope(u_char *s, size_t len)
{
    size_t  i;

    if (len == sizeof("global") - 1 && ngx_strncmp(s, "global", len) == 0) {
        return NGX_OK;
    }

    if (len <= sizeof("provider:") - 1 || len > NGX_DR_BUDGET_SCOPE_LEN
        || ngx_strncmp(s, "provider:", sizeof("provider:") - 1) != 0)
    {
        return NGX_ERROR;
    }

    for (i = sizeof("provider:") - 1; i < len; i++) {
        if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')) {
            continue;
        }

        if (i > sizeof("provider:") - 1
            && (s[i] == '_' || s[i] == '.' || s[i] == '-'))
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the index of a period's name, or NGX_ERROR */

ngx_int_t
ngx_dr_budget_period(u_char *s, size_t len)
{
    ngx_int_t  i;

    for (i = 0; ngx_dr_budget_periods[i].len; i++) {
        if (ngx_dr_budget_periods[i].len == len
            && ngx_strncmp(ngx_dr_budget_periods[i].data, s, len) == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


/* the configuration's defaults: scopes, periods and dollars, as arrays */

void
ngx_dr_budget_defaults(const char **params)
{
    params[0] = ngx_dr_budget_params[0];
    params[1] = ngx_dr_budget_params[1];
    params[2] = ngx_dr_budget_params[2];
}


ngx_int_t
ngx_dr_budget_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t           i;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (!ngx_dr_pg_configured()) {
        return NGX_OK;
    }

    ngx_dr_budget_conf = dmcf->budgets;

    if (dmcf->budgets) {
        for (i = 0; i < 3; i++) {
            ngx_dr_budget_params[i] =
                (const char *) ngx_dr_budget_array(cycle->pool,
                                                   dmcf->budgets, i);

            if (ngx_dr_budget_params[i] == NULL) {
                return NGX_ERROR;
            }
        }
    }

    /* the workers that call providers learn of every budget made */

    if (dmcf->providers && dmcf->runner) {
        ngx_dr_budget_timer.handler = ngx_dr_budget_reload;
        ngx_dr_budget_timer.log = cycle->log;
        ngx_dr_budget_timer.data = &ngx_dr_budget_timer;
        ngx_dr_budget_timer.cancelable = 1;

        if (ngx_dr_pg_listen("dr_budgets", ngx_dr_budget_changed, NULL)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    /* the figures for the scrape, and the expiry of forgotten holds */

    ngx_dr_budget_refresh.name = "the spend budgets' figures";
    ngx_dr_budget_refresh.sql = ngx_dr_budget_state_sql;
    ngx_dr_budget_refresh.interval = NGX_DR_BUDGET_INTERVAL;
    ngx_dr_budget_refresh.start = ngx_dr_budget_refresh_start;
    ngx_dr_budget_refresh.done = ngx_dr_budget_refreshed;

    ngx_dr_periodic_start(&ngx_dr_budget_refresh, cycle->log, 1000);

    return NGX_OK;
}


/*
 * A call's reservation: what it could cost, in every budget that applies
 * to its provider, all or none.  With no database to ask, the call does
 * not go: a budget is never overspent.
 */

void
ngx_dr_budget_reserve(ngx_dr_budget_hold_t *hold)
{
    u_char      *p;
    const char  *params[7];

    hold->state = NGX_DR_BUDGET_ASKING;
    hold->id = 0;
    hold->error[0] = '\0';
    hold->query = NULL;

    if (!ngx_dr_budget_applies(hold->provider)) {
        /* no hold: nothing to settle */
        hold->state = NGX_DR_BUDGET_HELD;
        hold->done(hold);
        return;
    }

    p = ngx_pnalloc(hold->pool, hold->provider->len + 1
                                + NGX_INT64_LEN + 1 + NGX_INT_T_LEN + 1);
    if (p == NULL) {
        hold->query = NULL;
        goto failed;
    }

    params[0] = (const char *) p;
    p = ngx_sprintf(p, "%V%Z", hold->provider);
    params[1] = (const char *) p;
    p = ngx_sprintf(p, "%L%Z", hold->amount);
    params[2] = (const char *) p;
    (void) ngx_sprintf(p, "%d%Z", NGX_DR_BUDGET_HOLD_TTL);
    params[3] = (const char *) hold->run_id;

    ngx_dr_budget_defaults(&params[4]);

    hold->query = ngx_dr_pg_query(hold->pool, hold->log, 0, 0,
                                  ngx_dr_budget_reserve_sql, 7, params,
                                  ngx_dr_budget_reserved, hold);
    if (hold->query) {
        return;
    }

failed:

    /* no memory: said like the database's failure, and not sent */
    hold->state = NGX_DR_BUDGET_UNAVAILABLE;
    (void) ngx_cpystrn((u_char *) hold->error,
                       (u_char *) "the spend budgets could not be checked",
                       sizeof(hold->error));
    hold->done(hold);
}


static void
ngx_dr_budget_reserved(ngx_dr_pg_query_t *q)
{
    u_char                *last;
    ngx_dr_budget_hold_t  *hold;

    hold = q->data;
    hold->query = NULL;
    last = (u_char *) hold->error + sizeof(hold->error) - 1;

    if (q->rc != NGX_DR_PG_OK || PQntuples(q->res) != 1) {
        hold->state = NGX_DR_BUDGET_UNAVAILABLE;
        *ngx_slprintf((u_char *) hold->error, last,
                      "the spend budgets could not be checked: %V",
                      &q->error) = '\0';
        hold->done(hold);
        return;
    }

    if (!PQgetisnull(q->res, 0, NGX_DR_BUDGET_SCOPE)) {
        hold->state = NGX_DR_BUDGET_REFUSED;
        *ngx_slprintf((u_char *) hold->error, last,
                      "the spend budget %s per %s ($%s) is exhausted",
                      PQgetvalue(q->res, 0, NGX_DR_BUDGET_SCOPE),
                      PQgetvalue(q->res, 0, NGX_DR_BUDGET_PERIOD),
                      PQgetvalue(q->res, 0, NGX_DR_BUDGET_USD)) = '\0';
        hold->done(hold);
        return;
    }

    /* no hold: no budget applies, and nothing needs settling */

    hold->id = PQgetisnull(q->res, 0, NGX_DR_BUDGET_HOLD)
               ? 0 : strtoll(PQgetvalue(q->res, 0, NGX_DR_BUDGET_HOLD),
                             NULL, 10);
    hold->state = NGX_DR_BUDGET_HELD;

    hold->done(hold);
}


/*
 * The call's cost replaces what it held, in a query of its own that the
 * call does not wait for.  If it is lost, the hold expires and is spent
 * in full: more than the call cost, never less.
 */

void
ngx_dr_budget_settle(ngx_dr_budget_hold_t *hold, int64_t cost)
{
    u_char      *p;
    ngx_pool_t  *pool;
    const char  *params[2];

    if (hold->state != NGX_DR_BUDGET_HELD) {
        return;
    }

    hold->state = NGX_DR_BUDGET_NONE;

    if (hold->id == 0) {
        return;
    }

    pool = ngx_create_pool(512, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    p = ngx_pnalloc(pool, 2 * (NGX_INT64_LEN + 1));
    if (p == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    params[0] = (const char *) p;
    p = ngx_sprintf(p, "%L%Z", hold->id);
    params[1] = (const char *) p;
    (void) ngx_sprintf(p, "%L%Z", cost >= 0 ? cost : hold->amount);

    hold->id = 0;

    if (ngx_dr_pg_query(pool, ngx_cycle->log, 0, 0, ngx_dr_budget_settle_sql,
                        2, params, ngx_dr_budget_settled, NULL)
        == NULL)
    {
        ngx_destroy_pool(pool);
    }
}


static void
ngx_dr_budget_settled(ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "a call's spend could not be settled (%V): its "
                      "reservation is spent in full when it expires",
                      &q->error);
    }

    ngx_destroy_pool(q->pool);
}


/*
 * The call goes away before its end: a reservation asked for is not
 * waited for (if it was made, it expires), one held is settled at nothing
 * if the call was not sent, in full if it was.
 */

void
ngx_dr_budget_release(ngx_dr_budget_hold_t *hold, ngx_uint_t sent)
{
    if (hold->state == NGX_DR_BUDGET_ASKING && hold->query) {
        ngx_dr_pg_cancel(hold->query);
        hold->query = NULL;
        hold->state = NGX_DR_BUDGET_NONE;
        return;
    }

    ngx_dr_budget_settle(hold, sent ? -1 : 0);
}


/*
 * Whether a budget may apply to a provider's calls: one of the
 * configuration or of the table for every provider ("global") or for
 * this one; and whenever the table's scopes are not known for sure.
 */

static ngx_uint_t
ngx_dr_budget_applies(ngx_str_t *provider)
{
    ngx_str_t        *scope;
    ngx_uint_t        i, n;
    ngx_dr_budget_t  *b;

    if (!ngx_dr_budget_known || !ngx_dr_pg_listening_now()) {
        return 1;
    }

    if (ngx_dr_budget_conf) {
        b = ngx_dr_budget_conf->elts;
        n = ngx_dr_budget_conf->nelts;

        for (i = 0; i < n; i++) {
            if (ngx_dr_budget_covers(&b[i].scope, provider)) {
                return 1;
            }
        }
    }

    scope = ngx_dr_budget_table->elts;

    for (i = 0; i < ngx_dr_budget_table->nelts; i++) {
        if (ngx_dr_budget_covers(&scope[i], provider)) {
            return 1;
        }
    }

    return 0;
}


/* whether a budget's scope covers a provider's calls */

ngx_uint_t
ngx_dr_budget_covers(ngx_str_t *scope, ngx_str_t *provider)
{
    size_t  n;

    if (scope->len == sizeof("global") - 1
        && ngx_strncmp(scope->data, "global", scope->len) == 0)
    {
        return 1;
    }

    n = sizeof("provider:") - 1;

    return scope->len == n + provider->len
           && ngx_strncmp(scope->data, "provider:", n) == 0
           && ngx_strncmp(scope->data + n, provider->data, provider->len)
              == 0;
}


/*
 * The budgets table changed, or the listening connection (re)connected
 * and a change may have gone unheard: every call reserves until the
 * table's scopes are read again.
 */

static void
ngx_dr_budget_changed(ngx_str_t *channel, ngx_str_t *payload, void *data)
{
    ngx_dr_budget_known = 0;

    if (ngx_dr_budget_loading) {
        /* what is being read may be older than this change */
        ngx_dr_budget_again = 1;
        return;
    }

    if (ngx_dr_budget_timer.timer_set) {
        ngx_del_timer(&ngx_dr_budget_timer);
    }

    ngx_dr_budget_load();
}


static void
ngx_dr_budget_load(void)
{
    if (ngx_exiting) {
        return;
    }

    ngx_dr_budget_loading = 1;
    ngx_dr_budget_again = 0;

    if (ngx_dr_pg_background(ngx_cycle->log, ngx_dr_budget_scopes_sql,
                             ngx_dr_budget_loaded, NULL)
        != NGX_OK)
    {
        ngx_dr_budget_loading = 0;
        ngx_add_timer(&ngx_dr_budget_timer, NGX_DR_BUDGET_RELOAD);
    }
}


static void
ngx_dr_budget_reload(ngx_event_t *ev)
{
    ngx_dr_budget_load();
}


static void
ngx_dr_budget_loaded(ngx_dr_pg_query_t *q)
{
    int           i, n;
    ngx_str_t    *scope;
    ngx_pool_t   *pool;
    ngx_array_t  *table;

    ngx_dr_budget_loading = 0;

    if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "the spend budgets could not be read (%V): every "
                      "call reserves until they are", &q->error);
        goto failed;
    }

    if (ngx_dr_budget_again) {
        ngx_destroy_pool(q->pool);
        ngx_dr_budget_load();
        return;
    }

    n = PQntuples(q->res);

    pool = ngx_create_pool(512, ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    table = ngx_array_create(pool, ngx_max(n, 1), sizeof(ngx_str_t));
    if (table == NULL) {
        ngx_destroy_pool(pool);
        goto failed;
    }

    for (i = 0; i < n; i++) {
        scope = ngx_array_push(table);
        if (scope == NULL) {
            ngx_destroy_pool(pool);
            goto failed;
        }

        scope->len = PQgetlength(q->res, i, 0);
        scope->data = ngx_pnalloc(pool, scope->len + 1);
        if (scope->data == NULL) {
            ngx_destroy_pool(pool);
            goto failed;
        }

        ngx_memcpy(scope->data, PQgetvalue(q->res, i, 0), scope->len);
    }

    if (ngx_dr_budget_table_pool) {
        ngx_destroy_pool(ngx_dr_budget_table_pool);
    }

    ngx_dr_budget_table_pool = pool;
    ngx_dr_budget_table = table;
    ngx_dr_budget_known = 1;

    ngx_destroy_pool(q->pool);
    return;

failed:

    /* not known: every call reserves meanwhile */
    ngx_destroy_pool(q->pool);

    if (!ngx_exiting) {
        ngx_add_timer(&ngx_dr_budget_timer, NGX_DR_BUDGET_RELOAD);
    }
}


/* worker 0: the budgets' figures for the scrape */

static ngx_int_t
ngx_dr_budget_refresh_start(ngx_dr_periodic_t *job, ngx_pool_t *pool)
{
    job->nparams = 3;
    ngx_dr_budget_defaults(job->params);

    return NGX_OK;
}


static void
ngx_dr_budget_refreshed(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    int                        i, n;
    ngx_dr_counters_budget_t  *b;

    if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0, "%s could not be read: %V",
                      job->name, &q->error);
        return;
    }

    n = ngx_min(PQntuples(q->res), NGX_DR_M_BUDGETS);

    b = ngx_pcalloc(q->pool, ngx_max(n, 1)
                             * sizeof(ngx_dr_counters_budget_t));
    if (b == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        (void) ngx_cpystrn(b[i].scope, (u_char *) PQgetvalue(q->res, i, 0),
                           NGX_DR_M_SCOPE_LEN);
        (void) ngx_cpystrn(b[i].period, (u_char *) PQgetvalue(q->res, i, 1),
                           NGX_DR_M_PERIOD_LEN);
        b[i].limit = strtoull(PQgetvalue(q->res, i, 2), NULL, 10);
        b[i].spent = strtoull(PQgetvalue(q->res, i, 3), NULL, 10);
        b[i].reserved = strtoull(PQgetvalue(q->res, i, 4), NULL, 10);
    }

    ngx_dr_counters_budgets_set(b, n);
}


/* one field of the configured budgets as a PostgreSQL array literal */

static u_char *
ngx_dr_budget_array(ngx_pool_t *pool, ngx_array_t *budgets, ngx_uint_t what)
{
    u_char           *s, *p;
    ngx_uint_t        i;
    ngx_dr_budget_t  *b;

    b = budgets->elts;

    s = ngx_pnalloc(pool, 3 + budgets->nelts * (NGX_DR_BUDGET_SCOPE_LEN
                                                + NGX_INT64_LEN + 4));
    if (s == NULL) {
        return NULL;
    }

    p = ngx_cpymem(s, "{", 1);

    for (i = 0; i < budgets->nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        switch (what) {

        case 0:
            /* scopes are checked: nothing to escape */
            p = ngx_sprintf(p, "\"%V\"", &b[i].scope);
            break;

        case 1:
            p = ngx_sprintf(p, "%V", &ngx_dr_budget_periods[b[i].period]);
            break;

        default:
            p = ngx_sprintf(p, "%L.%06L", b[i].usd / 1000000,
                            b[i].usd % 1000000);
        }
    }

    *p++ = '}';
    *p = '\0';

    return s;
}

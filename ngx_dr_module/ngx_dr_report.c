
/*
 * Domain Runner: a key's usage, day by day: GET /api/usage for the
 * caller's own key, GET /admin/usage?key=&days= for any key.
 *
 * Days are UTC days, the oldest first and today last.  What the usage
 * flush wrote to usage_daily is added to what the key's bucket in the
 * limit zone holds and has not flushed yet, so that today's requests and
 * refusals are exact to the second (as this node counts them: another
 * node's are in within its flush interval).
 *
 * Errors (answers of 400 or more to a request of a key, the limits'
 * refusals aside) are counted by each worker in the log phase and added
 * to usage_daily every second, in one statement for all keys; counts a
 * flush could not write wait for the next one.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_periodic.h"
#include "ngx_dr_validate.h"
#include "ngx_dr_report.h"


#define NGX_DR_REPORT_FLUSH      1000

/* the columns of ngx_dr_report_sql */
#define NGX_DR_REPORT_ID         0
#define NGX_DR_REPORT_PREFIX     1
#define NGX_DR_REPORT_NAME       2
#define NGX_DR_REPORT_TIER       3
#define NGX_DR_REPORT_DATE       4
#define NGX_DR_REPORT_REQUESTS   5
#define NGX_DR_REPORT_REFUSED    6
#define NGX_DR_REPORT_ERRORS     7

/* "YYYY-MM-DD" and its NUL */
#define NGX_DR_REPORT_DATE_LEN   11


/* a key's errors of one day in this worker, since the last flush */
typedef struct {
    ngx_rbtree_node_t         node;         /* key: the key's id */
    uint32_t                  day;          /* since the epoch, UTC */
    uint64_t                  errors;
} ngx_dr_report_errors_t;


/* the errors of this worker, and their flush */
typedef struct {
    ngx_pool_t               *pool;
    ngx_rbtree_t              tree;
    ngx_rbtree_node_t         sentinel;
    ngx_uint_t                n;
    ngx_dr_periodic_t         flush;
} ngx_dr_report_t;


/* a flushed count, kept to be counted again if the flush fails */
typedef struct {
    int64_t                   key_id;
    uint32_t                  day;
    uint64_t                  errors;
} ngx_dr_report_row_t;


static ngx_int_t ngx_dr_report_log(ngx_http_request_t *r);
static void ngx_dr_report_count(int64_t key_id, uint32_t day,
    uint64_t errors);
static void ngx_dr_report_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_dr_report_reset(ngx_log_t *log);
static ngx_int_t ngx_dr_report_flush(ngx_dr_periodic_t *job,
    ngx_pool_t *pool);
static void ngx_dr_report_flushed(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_report_query(ngx_http_request_t *r,
    const char *key_id, ngx_uint_t days);
static ngx_int_t ngx_dr_report_read(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_report_limits(ngx_http_request_t *r,
    json_t *answer, ngx_str_t *name, ngx_str_t *bucket, uint64_t used);
static json_t *ngx_dr_report_day(PGresult *res, int row);
static u_char *ngx_dr_report_date(u_char *p, uint32_t day);


/*
 * Every day of the last $2 up to $3 (today as nginx counts it, so that
 * the counts of the limit zone fall on their day), zeros included.
 */
static const char  ngx_dr_report_sql[] =
    "SELECT k.id, k.prefix, k.name, k.tier,"
    " to_char(d, 'YYYY-MM-DD'), coalesce(u.requests, 0),"
    " coalesce(u.rejected, 0), coalesce(u.errors, 0) "
    "FROM api_keys k"
    " CROSS JOIN generate_series($3::date - ($2::int - 1), $3::date,"
    "  interval '1 day') AS d"
    " LEFT JOIN usage_daily u ON u.key_id = k.id AND u.day = d::date "
    "WHERE k.id = $1 "
    "ORDER BY d";

static const char  ngx_dr_report_flush_sql[] =
    "INSERT INTO usage_daily (key_id, day, errors)"
    " SELECT u.k, u.d, sum(u.n)"
    " FROM unnest($1::int8[], $2::date[], $3::int8[]) AS u(k, d, n)"
    " WHERE EXISTS (SELECT 1 FROM api_keys a WHERE a.id = u.k)"
    " GROUP BY u.k, u.d "
    "ON CONFLICT (key_id, day) DO UPDATE"
    " SET errors = usage_daily.errors + EXCLUDED.errors";


static ngx_dr_report_t  ngx_dr_report;


ngx_int_t
ngx_dr_report_init(ngx_conf_t *cf)
{
    return ngx_dr_http_phase(cf, NGX_HTTP_LOG_PHASE, ngx_dr_report_log);
}


ngx_int_t
ngx_dr_report_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_periodic_t  *job;

    if (!ngx_dr_pg_configured()) {
        return NGX_OK;
    }

    if (ngx_dr_report_reset(cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    /* in every worker: its own errors, nothing shared to lock */

    job = &ngx_dr_report.flush;
    job->name = "the flush of the keys' errors";
    job->sql = ngx_dr_report_flush_sql;
    job->interval = NGX_DR_REPORT_FLUSH;
    job->start = ngx_dr_report_flush;
    job->done = ngx_dr_report_flushed;

    ngx_dr_periodic_start(job, cycle->log, NGX_DR_REPORT_FLUSH);

    return NGX_OK;
}


/* an answer of 400 or more to a key's request that its limits let in */

static ngx_int_t
ngx_dr_report_log(ngx_http_request_t *r)
{
    ngx_uint_t          status;
    ngx_dr_request_t   *req;
    ngx_dr_loc_conf_t  *dlcf;

    if (r != r->main || ngx_dr_report.pool == NULL) {
        return NGX_OK;
    }

    req = ngx_http_get_module_ctx(r, ngx_http_dr_module);

    if (req == NULL) {
        /* after an internal redirect, the state of the key checked */
        dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

        if (dlcf->auth == NGX_DR_AUTH_OFF) {
            return NGX_OK;
        }

        req = ngx_dr_request(r);
    }

    status = r->headers_out.status;

    /* a request let through in dry run is counted as refused already */

    if (req == NULL || req->key_id == 0
        || req->limit_status != NGX_DR_LIMIT_PASSED
        || status < NGX_HTTP_BAD_REQUEST
        || status == NGX_HTTP_CLIENT_CLOSED_REQUEST)
    {
        return NGX_OK;
    }

    ngx_dr_report_count(req->key_id, (uint32_t) (ngx_time() / 86400), 1);

    return NGX_OK;
}


static void
ngx_dr_report_count(int64_t key_id, uint32_t day, uint64_t errors)
{
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_dr_report_errors_t  *e;

    node = ngx_dr_report.tree.root;
    sentinel = ngx_dr_report.tree.sentinel;

    while (node != sentinel) {
        e = (ngx_dr_report_errors_t *) node;

        if ((ngx_rbtree_key_t) key_id == node->key && day == e->day) {
            e->errors += errors;
            return;
        }

        node = ((ngx_rbtree_key_t) key_id < node->key
                || ((ngx_rbtree_key_t) key_id == node->key && day < e->day))
               ? node->left : node->right;
    }

    e = ngx_palloc(ngx_dr_report.pool, sizeof(ngx_dr_report_errors_t));
    if (e == NULL) {
        return;
    }

    e->node.key = (ngx_rbtree_key_t) key_id;
    e->day = day;
    e->errors = errors;

    ngx_rbtree_insert(&ngx_dr_report.tree, &e->node);
    ngx_dr_report.n++;
}


/* ordered by key, then by day */

static void
ngx_dr_report_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {
        p = (node->key < temp->key
             || (node->key == temp->key
                 && ((ngx_dr_report_errors_t *) node)->day
                    < ((ngx_dr_report_errors_t *) temp)->day))
            ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* a new, empty count of errors */

static ngx_int_t
ngx_dr_report_reset(ngx_log_t *log)
{
    if (ngx_dr_report.pool) {
        ngx_destroy_pool(ngx_dr_report.pool);
    }

    ngx_dr_report.pool = ngx_create_pool(4096, log);
    if (ngx_dr_report.pool == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&ngx_dr_report.tree, &ngx_dr_report.sentinel,
                    ngx_dr_report_insert);
    ngx_dr_report.n = 0;

    return NGX_OK;
}


/* the counts move into the round: ids, days and errors as arrays */

static ngx_int_t
ngx_dr_report_flush(ngx_dr_periodic_t *job, ngx_pool_t *pool)
{
    u_char                  *ids, *days, *counts, *pi, *pd, *pc;
    ngx_array_t             *rows;
    ngx_rbtree_node_t       *node;
    ngx_dr_report_row_t     *row;
    ngx_dr_report_errors_t  *e;

    if (ngx_dr_report.n == 0) {
        return NGX_DECLINED;
    }

    rows = ngx_array_create(pool, ngx_dr_report.n,
                            sizeof(ngx_dr_report_row_t));
    ids = ngx_pnalloc(pool, ngx_dr_report.n * (NGX_INT64_LEN + 1) + 2);
    days = ngx_pnalloc(pool, ngx_dr_report.n * NGX_DR_REPORT_DATE_LEN + 2);
    counts = ngx_pnalloc(pool, ngx_dr_report.n * (NGX_INT64_LEN + 1) + 2);

    if (rows == NULL || ids == NULL || days == NULL || counts == NULL) {
        return NGX_ERROR;
    }

    pi = ids;
    pd = days;
    pc = counts;

    for (node = ngx_rbtree_min(ngx_dr_report.tree.root,
                               ngx_dr_report.tree.sentinel);
         node;
         node = ngx_rbtree_next(&ngx_dr_report.tree, node))
    {
        e = (ngx_dr_report_errors_t *) node;

        *pi++ = rows->nelts ? ',' : '{';
        *pd++ = rows->nelts ? ',' : '{';
        *pc++ = rows->nelts ? ',' : '{';

        row = ngx_array_push(rows);
        row->key_id = (int64_t) node->key;
        row->day = e->day;
        row->errors = e->errors;

        pi = ngx_sprintf(pi, "%L", row->key_id);
        pd = ngx_dr_report_date(pd, row->day);
        pc = ngx_sprintf(pc, "%uL", row->errors);
    }

    *pi++ = '}'; *pi = '\0';
    *pd++ = '}'; *pd = '\0';
    *pc++ = '}'; *pc = '\0';

    job->round = rows;
    job->nparams = 3;
    job->params[0] = (const char *) ids;
    job->params[1] = (const char *) days;
    job->params[2] = (const char *) counts;

    /* counted from zero again, while the round is under way */
    return ngx_dr_report_reset(pool->log);
}


static void
ngx_dr_report_flushed(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    ngx_uint_t            i;
    ngx_array_t          *rows;
    ngx_dr_report_row_t  *row;

    if (q->rc == NGX_DR_PG_OK) {
        return;
    }

    rows = job->round;
    row = rows->elts;

    ngx_log_error(NGX_LOG_WARN, q->log, 0,
                  "the errors of %ui keys and days were not flushed (%V), "
                  "kept for the next attempt", rows->nelts, &q->error);

    for (i = 0; i < rows->nelts; i++) {
        ngx_dr_report_count(row[i].key_id, row[i].day, row[i].errors);
    }
}


/* GET /api/usage?days=: the caller's own key */

ngx_int_t
ngx_dr_report_handler(ngx_http_request_t *r, ngx_uint_t days)
{
    u_char            *p;
    ngx_table_elt_t   *h;
    ngx_dr_request_t  *req;

    static ngx_str_t  www_key = ngx_string("WWW-Authenticate");
    static ngx_str_t  www = ngx_string("Bearer realm=\"domain-runner\"");

    req = ngx_dr_request(r);
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (req->key_id == 0) {
        if (ngx_dr_http_header(r, &www_key, &www, &h) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->headers_out.www_authenticate = h;

        return ngx_dr_json_error(r, NGX_HTTP_UNAUTHORIZED, "missing_key",
                                 "the usage of a key needs the key, in "
                                 "X-API-Key or Authorization: Bearer");
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_sprintf(p, "%L%Z", req->key_id);

    return ngx_dr_report_query(r, (const char *) p, days);
}


/* GET /admin/usage?key=ID&days=N: any key */

ngx_int_t
ngx_dr_report_admin(ngx_http_request_t *r)
{
    ngx_str_t      key, days;
    unsigned long  id, n;

    if (ngx_http_arg(r, (u_char *) "key", 3, &key) != NGX_OK
        || ngx_dr_validate_uint(key.data, key.len, 1,
                                (unsigned long) NGX_MAX_INT_T_VALUE, &id)
           != NGX_DR_VALID_OK)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                 "invalid_parameter",
                                 "key: the id of a key is needed");
    }

    n = NGX_DR_REPORT_DAYS;

    if (ngx_http_arg(r, (u_char *) "days", 4, &days) == NGX_OK
        && ngx_dr_validate_uint(days.data, days.len, 1,
                                NGX_DR_REPORT_DAYS_MAX, &n)
           != NGX_DR_VALID_OK)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                 "invalid_parameter",
                                 "days: a whole number from 1 to %d is "
                                 "needed", NGX_DR_REPORT_DAYS_MAX);
    }

    return ngx_dr_report_query(r, (const char *) ngx_dr_cstr(r->pool, &key),
                               n);
}


static ngx_int_t
ngx_dr_report_query(ngx_http_request_t *r, const char *key_id,
    ngx_uint_t days)
{
    u_char      *p;
    const char  *params[3];

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1 + NGX_DR_REPORT_DATE_LEN);
    if (p == NULL || key_id == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = key_id;
    params[1] = (const char *) p;
    p = ngx_sprintf(p, "%ui%Z", days);
    params[2] = (const char *) p;
    *ngx_dr_report_date(p, (uint32_t) (ngx_time() / 86400)) = '\0';

    /* the primary: a replica may not have the last flush yet */
    return ngx_dr_http_query(r, 0, 0, ngx_dr_report_sql, 3, params,
                             ngx_dr_report_read);
}


/* the stored days, with what the limit zone has not flushed yet */

static ngx_int_t
ngx_dr_report_read(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    int                  i, n;
    json_t              *usage, *day, *v, *answer;
    ngx_str_t            bucket, tier;
    ngx_dr_limit_row_t   row;
    ngx_dr_main_conf_t  *dmcf;
    u_char               date[NGX_DR_REPORT_DATE_LEN];

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    n = PQntuples(q->res);

    if (n == 0) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no key has this id");
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    tier.data = (u_char *) PQgetvalue(q->res, 0, NGX_DR_REPORT_TIER);
    tier.len = PQgetlength(q->res, 0, NGX_DR_REPORT_TIER);

    /* the key's bucket: "t:<tier>:k:<id>", as ngx_dr_auth.c names it */

    bucket.data = ngx_pnalloc(r->pool, tier.len + NGX_INT64_LEN + 6);
    if (bucket.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    bucket.len = ngx_sprintf(bucket.data, "t:%V:k:%s", &tier,
                             PQgetvalue(q->res, 0, NGX_DR_REPORT_ID))
                 - bucket.data;

    (void) ngx_dr_limit_usage(&dmcf->limit, &bucket, &row);
    *ngx_dr_report_date(date, row.day) = '\0';

    usage = json_array();
    if (usage == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        day = ngx_dr_report_day(q->res, i);
        if (day == NULL) {
            json_decref(usage);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_strcmp(PQgetvalue(q->res, i, NGX_DR_REPORT_DATE), date)
            == 0)
        {
            v = json_object_get(day, "requests");
            json_integer_set(v, json_integer_value(v) + row.n);
            v = json_object_get(day, "refused");
            json_integer_set(v, json_integer_value(v) + row.rejected);
        }

        json_array_append_new(usage, day);
    }

    day = json_array_get(usage, n - 1);
    v = json_object_get(day, "requests");

    answer = json_pack("{s:{s:I, s:s, s:s, s:s}, s:i, s:o, s:O}",
                       "key",
                       "id", (json_int_t) strtoll(PQgetvalue(q->res, 0,
                                                  NGX_DR_REPORT_ID),
                                                  NULL, 10),
                       "prefix", PQgetvalue(q->res, 0, NGX_DR_REPORT_PREFIX),
                       "name", PQgetvalue(q->res, 0, NGX_DR_REPORT_NAME),
                       "tier", tier.data,
                       "days", n,
                       "usage", usage,
                       "today", day);

    if (answer == NULL
        || ngx_dr_report_limits(r, answer, &tier, &bucket,
                                ngx_max(row.daily,
                                        (uint64_t) json_integer_value(v)))
           != NGX_OK)
    {
        json_decref(answer);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK, answer);
}


/*
 * The tier's limits and what remains of them: the tokens of the key's
 * bucket now (a bucket this node has not made yet is full), and of its
 * daily quota what the larger of the count seen and the count the limit
 * enforces leaves.  Both null when the tier is not declared here.
 */

static ngx_int_t
ngx_dr_report_limits(ngx_http_request_t *r, json_t *answer, ngx_str_t *name,
    ngx_str_t *bucket, uint64_t used)
{
    time_t               now;
    ngx_int_t            tokens;
    ngx_dr_tier_t       *tier;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    tier = ngx_dr_limit_find_tier(&dmcf->limit, name->data, name->len);

    if (tier == NULL) {
        json_object_set_new(answer, "limits", json_null());
        json_object_set_new(answer, "remaining", json_null());
        return NGX_OK;
    }

    tokens = ngx_dr_limit_tokens(&dmcf->limit, bucket);
    now = ngx_time();

    return json_object_set_new(answer, "limits",
               json_pack("{s:s#, s:I, s:I, s:I, s:o}",
                   "tier", name->data, (int) name->len,
                   "rate", (json_int_t) tier->rate,
                   "period_seconds", (json_int_t) (tier->period / 1000),
                   "burst", (json_int_t) tier->burst,
                   "daily", tier->daily ? json_integer(tier->daily)
                                        : json_null()))
           || json_object_set_new(answer, "remaining",
               json_pack("{s:I, s:o, s:I}",
                   "burst", (json_int_t) (tokens >= 0 ? (ngx_uint_t) tokens
                                                      : tier->burst),
                   "daily", tier->daily
                            ? json_integer(used < tier->daily
                                           ? tier->daily - used : 0)
                            : json_null(),
                   "daily_reset_seconds",
                   (json_int_t) (86400 - now % 86400)))
           ? NGX_ERROR : NGX_OK;
}


/* one stored day: {date, requests, refused, errors} */

static json_t *
ngx_dr_report_day(PGresult *res, int row)
{
    return json_pack("{s:s, s:I, s:I, s:I}",
                     "date", PQgetvalue(res, row, NGX_DR_REPORT_DATE),
                     "requests",
                     (json_int_t) strtoll(PQgetvalue(res, row,
                                          NGX_DR_REPORT_REQUESTS), NULL, 10),
                     "refused",
                     (json_int_t) strtoll(PQgetvalue(res, row,
                                          NGX_DR_REPORT_REFUSED), NULL, 10),
                     "errors",
                     (json_int_t) strtoll(PQgetvalue(res, row,
                                          NGX_DR_REPORT_ERRORS), NULL, 10));
}


/* "YYYY-MM-DD" of a UTC day since the epoch */

static u_char *
ngx_dr_report_date(u_char *p, uint32_t day)
{
    ngx_tm_t  tm;

    ngx_gmtime((time_t) day * 86400, &tm);

    return ngx_sprintf(p, "%4d-%02d-%02d", tm.ngx_tm_year, tm.ngx_tm_mon,
                       tm.ngx_tm_mday);
}

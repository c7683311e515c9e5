
/*
 * Domain Runner: the daily usage flush and the cluster sync of the
 * limits, background jobs of worker 0.
 *
 * The flush writes the requests and refusals of each key to usage_daily
 * in one batch a flush interval; a batch that fails goes back to the
 * buckets, so nothing is lost while the database is away (except what a
 * full restart of nginx drops with the zone).
 *
 * In cluster mode each node pushes, every half interval, the tokens it
 * took from each bucket, and pulls what the others took, which its own
 * buckets then lose: what one node takes reaches the others within one
 * interval, and N nodes admit at most rate x interval x (N - 1) more than
 * one node would, plus the burst each node's new bucket starts with.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_dr_periodic.h"
#include "ngx_dr_limit.h"
#include "ngx_dr_usage.h"


/* the fields of a batch's rows, as PostgreSQL array literals */
#define NGX_DR_USAGE_KEY_ID    0
#define NGX_DR_USAGE_DAY       1
#define NGX_DR_USAGE_N         2
#define NGX_DR_USAGE_REJECTED  3
#define NGX_DR_USAGE_BUCKET    4
#define NGX_DR_USAGE_DAILY     5


static ngx_int_t ngx_dr_usage_flush(ngx_dr_periodic_t *job,
    ngx_pool_t *pool);
static void ngx_dr_usage_flushed(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_usage_sync(ngx_dr_periodic_t *job,
    ngx_pool_t *pool);
static void ngx_dr_usage_synced(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static u_char *ngx_dr_usage_array(ngx_pool_t *pool, ngx_array_t *rows,
    ngx_uint_t field);


static const char  ngx_dr_usage_flush_sql[] =
    "WITH u AS ("
    " INSERT INTO usage_daily (key_id, day, requests, rejected)"
    " SELECT u.k, u.d, sum(u.n), sum(u.x)"
    " FROM unnest($1::int8[], $2::date[], $3::int8[], $4::int8[])"
    "  AS u(k, d, n, x)"
    " WHERE EXISTS (SELECT 1 FROM api_keys a WHERE a.id = u.k)"
    " GROUP BY u.k, u.d"
    " ON CONFLICT (key_id, day) DO UPDATE"
    " SET requests = usage_daily.requests + EXCLUDED.requests,"
    "     rejected = usage_daily.rejected + EXCLUDED.rejected"
    " RETURNING key_id, requests > 0 AS used) "
    "UPDATE api_keys SET last_used_at = now()"
    " WHERE id IN (SELECT key_id FROM u WHERE used)";


/*
 * Pushes this node's figures of the buckets it changed, and pulls the
 * others' sums: their tokens where any of them is recent (news to take
 * from the local bucket), and their daily counts of today for every
 * bucket this node pushed (a quota holds however long ago they were
 * used).
 */

static const char  ngx_dr_usage_sync_sql[] =
    "WITH p AS ("
    " INSERT INTO limit_consumption (node, bucket, consumed, day, daily)"
    " SELECT $1, u.b, u.c, u.d, u.n"
    " FROM unnest($2::text[], $3::int8[], $5::date[], $6::int8[])"
    "  AS u(b, c, d, n)"
    " ON CONFLICT (node, bucket) DO UPDATE"
    " SET consumed = EXCLUDED.consumed, day = EXCLUDED.day,"
    "     daily = EXCLUDED.daily, updated_at = now()"
    " RETURNING bucket),"
    /*
     * the rows of a bucket no node took from for a day go, those of nodes
     * gone included; not one row of a bucket in use elsewhere, or its
     * node's count, coming back, would look new and be charged again
     */
    " d AS (DELETE FROM limit_consumption o"
    " WHERE updated_at < now() - interval '1 day' AND NOT EXISTS (SELECT 1"
    "  FROM limit_consumption r WHERE r.bucket = o.bucket"
    "  AND r.updated_at >= now() - interval '1 day')"
    " AND NOT (o.node = $1 AND o.bucket = ANY ($2::text[]))) "
    "SELECT l.bucket, sum(l.consumed)::int8,"
    " bool_or(l.updated_at > now() - $4::interval),"
    " coalesce(sum(l.daily) FILTER (WHERE l.day = $7::date), 0)::int8 "
    "FROM limit_consumption l "
    "WHERE l.node <> $1"
    " AND (l.bucket IN (SELECT bucket FROM p)"
    "  OR l.bucket IN (SELECT bucket FROM limit_consumption"
    "   WHERE node <> $1 AND updated_at > now() - $4::interval)) "
    "GROUP BY l.bucket";


static ngx_dr_periodic_t  ngx_dr_usage_flush_job;
static ngx_dr_periodic_t  ngx_dr_usage_sync_job;


ngx_int_t
ngx_dr_usage_init_process(ngx_cycle_t *cycle, ngx_dr_limit_conf_t *lcf)
{
    ngx_dr_periodic_t  *job;

    if (lcf->shm_zone == NULL || ngx_worker != 0 || !ngx_dr_pg_configured())
    {
        return NGX_OK;
    }

    job = &ngx_dr_usage_flush_job;
    job->name = "the daily usage flush";
    job->sql = ngx_dr_usage_flush_sql;
    job->interval = lcf->flush_interval;
    job->start = ngx_dr_usage_flush;
    job->done = ngx_dr_usage_flushed;
    job->data = lcf;

    ngx_dr_periodic_start(job, cycle->log, lcf->flush_interval);

    if (lcf->sync_interval == NGX_CONF_UNSET_MSEC) {
        return NGX_OK;
    }

    job = &ngx_dr_usage_sync_job;
    job->name = "the cluster sync of the limits";
    job->sql = ngx_dr_usage_sync_sql;
    job->interval = lcf->sync_interval / 2;
    job->start = ngx_dr_usage_sync;
    job->done = ngx_dr_usage_synced;
    job->data = lcf;

    ngx_dr_periodic_start(job, cycle->log, lcf->sync_interval / 2);

    return NGX_OK;
}


static ngx_int_t
ngx_dr_usage_flush(ngx_dr_periodic_t *job, ngx_pool_t *pool)
{
    ngx_uint_t    i;
    ngx_array_t  *rows;

    rows = ngx_dr_limit_collect(job->data, pool, NGX_DR_LIMIT_PENDING);

    if (rows == NULL) {
        return NGX_ERROR;
    }

    if (rows->nelts == 0) {
        return NGX_DECLINED;
    }

    job->round = rows;
    job->nparams = 4;

    for (i = 0; i < 4; i++) {
        job->params[i] = (char *) ngx_dr_usage_array(pool, rows, i);

        if (job->params[i] == NULL) {
            ngx_dr_limit_apply(job->data, rows, NGX_DR_LIMIT_PENDING);
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static void
ngx_dr_usage_flushed(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    ngx_array_t  *rows;

    if (q->rc == NGX_DR_PG_OK) {
        return;
    }

    rows = job->round;

    ngx_log_error(NGX_LOG_WARN, q->log, 0,
                  "daily usage of %ui keys not flushed, kept for the next "
                  "attempt", rows->nelts);

    ngx_dr_limit_apply(job->data, rows, NGX_DR_LIMIT_PENDING);
}


/* push what this node took, pull what the others took */

static ngx_int_t
ngx_dr_usage_sync(ngx_dr_periodic_t *job, ngx_pool_t *pool)
{
    u_char               *p;
    ngx_tm_t              tm;
    ngx_array_t          *rows;
    ngx_dr_limit_conf_t  *lcf;

    lcf = job->data;

    rows = ngx_dr_limit_collect(lcf, pool, NGX_DR_LIMIT_CONSUMED);
    if (rows == NULL) {
        return NGX_ERROR;
    }

    job->round = rows;
    job->nparams = 7;

    p = ngx_pnalloc(pool, lcf->node.len + 1);
    if (p) {
        *ngx_cpymem(p, lcf->node.data, lcf->node.len) = '\0';
    }

    job->params[0] = (char *) p;
    job->params[1] = (char *) ngx_dr_usage_array(pool, rows,
                                                 NGX_DR_USAGE_BUCKET);
    job->params[2] = (char *) ngx_dr_usage_array(pool, rows,
                                                 NGX_DR_USAGE_N);

    p = ngx_pnalloc(pool, NGX_INT_T_LEN + sizeof(" milliseconds"));
    if (p) {
        (void) ngx_sprintf(p, "%M milliseconds%Z", 3 * lcf->sync_interval);
    }

    job->params[3] = (char *) p;
    job->params[4] = (char *) ngx_dr_usage_array(pool, rows,
                                                 NGX_DR_USAGE_DAY);
    job->params[5] = (char *) ngx_dr_usage_array(pool, rows,
                                                 NGX_DR_USAGE_DAILY);

    p = ngx_pnalloc(pool, sizeof("yyyy-mm-dd"));
    if (p) {
        ngx_gmtime(ngx_time(), &tm);
        (void) ngx_sprintf(p, "%4d-%02d-%02d%Z", tm.ngx_tm_year,
                           tm.ngx_tm_mon, tm.ngx_tm_mday);
    }

    job->params[6] = (char *) p;

    if (job->params[0] == NULL || job->params[1] == NULL
        || job->params[2] == NULL || job->params[3] == NULL
        || job->params[4] == NULL || job->params[5] == NULL
        || job->params[6] == NULL)
    {
        ngx_dr_limit_apply(lcf, rows, NGX_DR_LIMIT_CONSUMED);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_dr_usage_synced(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    int                  i, n;
    ngx_array_t         *remote;
    ngx_dr_limit_row_t  *row;

    if (q->rc != NGX_DR_PG_OK) {
        /* pushed again next time */
        ngx_dr_limit_apply(job->data, job->round, NGX_DR_LIMIT_CONSUMED);
        return;
    }

    n = PQntuples(q->res);

    remote = ngx_array_create(q->pool, ngx_max(n, 1),
                              sizeof(ngx_dr_limit_row_t));
    if (remote == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        row = ngx_array_push(remote);
        if (row == NULL) {
            return;
        }

        ngx_memzero(row, sizeof(ngx_dr_limit_row_t));

        row->key.data = (u_char *) PQgetvalue(q->res, i, 0);
        row->key.len = PQgetlength(q->res, i, 0);
        row->n = (uint64_t) ngx_atoof((u_char *) PQgetvalue(q->res, i, 1),
                                      PQgetlength(q->res, i, 1));
        row->recent = (PQgetvalue(q->res, i, 2)[0] == 't');
        row->daily = (uint64_t) ngx_atoof(
                         (u_char *) PQgetvalue(q->res, i, 3),
                         PQgetlength(q->res, i, 3));
        row->day = (uint32_t) (ngx_time() / NGX_DR_LIMIT_DAY);
    }

    ngx_dr_limit_apply(job->data, remote, NGX_DR_LIMIT_REMOTE);
}


/* a PostgreSQL array literal of one field of the rows */

static u_char *
ngx_dr_usage_array(ngx_pool_t *pool, ngx_array_t *rows, ngx_uint_t field)
{
    u_char              *p, *s;
    size_t               len, k;
    ngx_tm_t             tm;
    ngx_uint_t           i;
    ngx_dr_limit_row_t  *row;

    row = rows->elts;
    len = 3;

    for (i = 0; i < rows->nelts; i++) {
        len += NGX_INT64_LEN + 2 + 2 * row[i].key.len + 3;
    }

    s = ngx_pnalloc(pool, len);
    if (s == NULL) {
        return NULL;
    }

    p = s;
    *p++ = '{';

    for (i = 0; i < rows->nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        switch (field) {

        case NGX_DR_USAGE_KEY_ID:
            p = ngx_sprintf(p, "%L", row[i].key_id);
            break;

        case NGX_DR_USAGE_DAY:
            ngx_gmtime((time_t) row[i].day * NGX_DR_LIMIT_DAY, &tm);
            p = ngx_sprintf(p, "%4d-%02d-%02d", tm.ngx_tm_year,
                            tm.ngx_tm_mon, tm.ngx_tm_mday);
            break;

        case NGX_DR_USAGE_N:
            p = ngx_sprintf(p, "%uL", row[i].n);
            break;

        case NGX_DR_USAGE_REJECTED:
            p = ngx_sprintf(p, "%uL", row[i].rejected);
            break;

        case NGX_DR_USAGE_DAILY:
            p = ngx_sprintf(p, "%uL", row[i].daily);
            break;

        default: /* NGX_DR_USAGE_BUCKET: the key, quoted and escaped */
            *p++ = '"';

            for (k = 0; k < row[i].key.len; k++) {
                if (row[i].key.data[k] == '"' || row[i].key.data[k] == '\\')
                {
                    *p++ = '\\';
                }

                *p++ = row[i].key.data[k];
            }

            *p++ = '"';
        }
    }

    *p++ = '}';
    *p = '\0';

    return s;
}

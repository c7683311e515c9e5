
/*
 * Domain Runner: the job queue's figures, for the scrape and the health
 * summary, refreshed by worker 0 in the background: a scrape never
 * queries the database.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_dr_counters.h"
#include "ngx_dr_periodic.h"
#include "ngx_dr_queue.h"


#define NGX_DR_QUEUE_INTERVAL  15000


static void ngx_dr_queue_read(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q);


/* the columns follow NGX_DR_JOB_QUEUED .. NGX_DR_JOB_DEAD */

static const char  ngx_dr_queue_sql[] =
    "SELECT"
    " count(*) FILTER (WHERE status = 'queued'),"
    " count(*) FILTER (WHERE status = 'leased'),"
    " count(*) FILTER (WHERE status = 'done'),"
    " count(*) FILTER (WHERE status = 'failed'),"
    " count(*) FILTER (WHERE status = 'dead'),"
    " (SELECT count(*) FROM runs WHERE status IN ('queued', 'running')) "
    "FROM jobs";


static ngx_dr_periodic_t  ngx_dr_queue_job;


ngx_int_t
ngx_dr_queue_init_process(ngx_cycle_t *cycle)
{
    if (ngx_worker != 0 || !ngx_dr_pg_configured()) {
        return NGX_OK;
    }

    ngx_dr_queue_job.name = "the queue's figures";
    ngx_dr_queue_job.sql = ngx_dr_queue_sql;
    ngx_dr_queue_job.flags = NGX_DR_PG_READ;
    ngx_dr_queue_job.interval = NGX_DR_QUEUE_INTERVAL;
    ngx_dr_queue_job.done = ngx_dr_queue_read;

    ngx_dr_periodic_start(&ngx_dr_queue_job, cycle->log, 1000);

    return NGX_OK;
}


static void
ngx_dr_queue_read(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  jobs[NGX_DR_JOB_STATES];

    if (q->rc != NGX_DR_PG_OK || PQntuples(q->res) != 1) {
        return;
    }

    for (i = 0; i < NGX_DR_JOB_STATES; i++) {
        jobs[i] = ngx_atoof((u_char *) PQgetvalue(q->res, 0, i),
                            PQgetlength(q->res, 0, i));
    }

    ngx_dr_counters_queue(jobs, ngx_atoof(
        (u_char *) PQgetvalue(q->res, 0, NGX_DR_JOB_STATES),
        PQgetlength(q->res, 0, NGX_DR_JOB_STATES)));
}

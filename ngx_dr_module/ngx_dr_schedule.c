
/*
 * Domain Runner: the scheduled runs.
 *
 * The first worker of every node asks, at a quarter of the schedule's
 * period (at most every minute), for the run of the current window; the
 * window's unique slot makes one run of it in the cluster whichever node
 * asks first, and no more however often they ask.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_schedule.h"
#include "ngx_dr_periodic.h"


static ngx_int_t ngx_dr_schedule_start(ngx_dr_periodic_t *job,
    ngx_pool_t *pool);
static void ngx_dr_schedule_made(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);


static ngx_dr_periodic_t  ngx_dr_schedule;
static u_char             ngx_dr_schedule_period[NGX_TIME_T_LEN + 1];


static const char  ngx_dr_schedule_sql[] =
    /* each domain's tier chooses its models and prompts */
    "WITH sel AS ("
    " SELECT domain_id AS d, model_id AS m, prompt_id AS p FROM tier_jobs),"
    " r AS ("
    " INSERT INTO runs (kind, status, total_jobs, schedule_slot)"
    " SELECT 'scheduled', 'queued', count(*),"
    "  (floor(extract(epoch FROM now()) / $1::int) * $1::int)::bigint"
    " FROM sel HAVING count(*) > 0"
    " ON CONFLICT (schedule_slot) WHERE kind = 'scheduled' DO NOTHING"
    " RETURNING id),"
    " j AS ("
    " INSERT INTO jobs (run_id, domain_id, model_id, prompt_id)"
    " SELECT r.id, sel.d, sel.m, sel.p FROM r, sel"
    " RETURNING 1) "
    "SELECT r.id, (SELECT count(*) FROM j) FROM r";


ngx_int_t
ngx_dr_schedule_init_process(ngx_cycle_t *cycle)
{
    ngx_msec_t           interval;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || dmcf->schedule == 0 || ngx_worker != 0
        || !ngx_dr_pg_configured())
    {
        return NGX_OK;
    }

    (void) ngx_snprintf(ngx_dr_schedule_period,
                        sizeof(ngx_dr_schedule_period), "%T%Z",
                        dmcf->schedule);

    interval = (ngx_msec_t) dmcf->schedule * 1000 / 4;
    interval = ngx_max(interval, 250);
    interval = ngx_min(interval, 60000);

    ngx_dr_schedule.name = "the scheduled run";
    ngx_dr_schedule.sql = ngx_dr_schedule_sql;
    ngx_dr_schedule.interval = interval;
    ngx_dr_schedule.start = ngx_dr_schedule_start;
    ngx_dr_schedule.done = ngx_dr_schedule_made;

    ngx_dr_periodic_start(&ngx_dr_schedule, cycle->log, 1000);

    return NGX_OK;
}


static ngx_int_t
ngx_dr_schedule_start(ngx_dr_periodic_t *job, ngx_pool_t *pool)
{
    job->params[0] = (const char *) ngx_dr_schedule_period;
    job->nparams = 1;

    return NGX_OK;
}


static void
ngx_dr_schedule_made(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "the scheduled run could not be made; asking again");
        return;
    }

    if (PQntuples(q->res) == 1) {
        ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                      "scheduled run %s made with %s jobs",
                      PQgetvalue(q->res, 0, 0), PQgetvalue(q->res, 0, 1));
    }
}


/*
 * Domain Runner: a periodic background job of one worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_dr_periodic.h"


static void ngx_dr_periodic_round(ngx_event_t *ev);
static void ngx_dr_periodic_done(ngx_dr_pg_query_t *q);
static void ngx_dr_periodic_again(ngx_dr_periodic_t *job);


void
ngx_dr_periodic_start(ngx_dr_periodic_t *job, ngx_log_t *log,
    ngx_msec_t delay)
{
    job->event.handler = ngx_dr_periodic_round;
    job->event.data = job;
    job->event.log = log;
    job->event.cancelable = 1;
    job->once = 0;

    ngx_add_timer(&job->event, delay);
}


void
ngx_dr_periodic_kick(ngx_dr_periodic_t *job, ngx_log_t *log,
    ngx_msec_t delay)
{
    if (job->busy || job->event.timer_set) {
        return;
    }

    job->event.handler = ngx_dr_periodic_round;
    job->event.data = job;
    job->event.log = log;
    job->once = 1;

    ngx_add_timer(&job->event, delay);
}


static void
ngx_dr_periodic_round(ngx_event_t *ev)
{
    ngx_int_t           rc;
    ngx_pool_t         *pool;
    ngx_dr_periodic_t  *job;

    job = ev->data;

    /* a job kicked once (a notification) is still sent while exiting */
    if (ngx_exiting && !job->once) {
        return;
    }

    pool = ngx_create_pool(4096, ev->log);
    if (pool == NULL) {
        ngx_dr_periodic_again(job);
        return;
    }

    job->nparams = 0;
    job->round = NULL;

    rc = job->start ? job->start(job, pool) : NGX_OK;

    if (rc == NGX_OK
        && ngx_dr_pg_query(pool, ev->log, job->flags, 0, job->sql,
                           job->nparams, job->params, ngx_dr_periodic_done,
                           job)
           != NULL)
    {
        job->busy = 1;
        return;
    }

    if (rc == NGX_OK || rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "%s could not be sent; tried again later", job->name);
    }

    ngx_destroy_pool(pool);
    ngx_dr_periodic_again(job);
}


static void
ngx_dr_periodic_done(ngx_dr_pg_query_t *q)
{
    ngx_dr_periodic_t  *job;

    job = q->data;
    job->busy = 0;

    if (job->done) {
        job->done(job, q);

    } else if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0, "%s failed: %V", job->name,
                      &q->error);
    }

    ngx_destroy_pool(q->pool);
    ngx_dr_periodic_again(job);
}


static void
ngx_dr_periodic_again(ngx_dr_periodic_t *job)
{
    ngx_msec_t  delay;

    if (job->once || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    delay = job->interval;

    if (job->jitter) {
        delay += ngx_random() % job->jitter;
    }

    ngx_add_timer(&job->event, delay);
}

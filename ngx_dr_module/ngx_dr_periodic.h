
/*
 * Domain Runner: a periodic background job of one worker.
 *
 * Each round makes a pool, asks start() for the round's parameters (or
 * for nothing to do), sends the job's query, hands its outcome to done(),
 * frees the pool and arms the timer again; nothing is started while the
 * worker exits.  The usage flush, the cluster sync, the reaper, the
 * search for unscored runs, the queue's figures, the scheduler and the
 * score notification are such jobs.
 */


#ifndef _NGX_DR_PERIODIC_H_INCLUDED_
#define _NGX_DR_PERIODIC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_dr_pg.h"


#define NGX_DR_PERIODIC_PARAMS  8


typedef struct ngx_dr_periodic_s  ngx_dr_periodic_t;

/*
 * The round's parameters, allocated from pool: NGX_OK to send the query,
 * NGX_DECLINED when there is nothing to do this round, NGX_ERROR.
 */
typedef ngx_int_t (*ngx_dr_periodic_start_pt)(ngx_dr_periodic_t *job,
    ngx_pool_t *pool);

/* the query's outcome; the pool is freed after it returns */
typedef void (*ngx_dr_periodic_done_pt)(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);


struct ngx_dr_periodic_s {
    const char                *name;        /* for the log */
    const char                *sql;
    ngx_uint_t                 flags;       /* NGX_DR_PG_READ, ... */
    ngx_msec_t                 interval;
    ngx_msec_t                 jitter;      /* added at random, at most */
    ngx_dr_periodic_start_pt   start;       /* NULL: no parameters */
    ngx_dr_periodic_done_pt    done;        /* NULL: nothing to read */
    void                      *data;        /* the job's own */

    /* set by start() for the round */
    int                        nparams;
    const char                *params[NGX_DR_PERIODIC_PARAMS];
    void                      *round;

    /* private */
    ngx_event_t                event;
    unsigned                   busy:1;
    unsigned                   once:1;
};


/* the first round after delay ms, then one every interval (+ jitter) */
void ngx_dr_periodic_start(ngx_dr_periodic_t *job, ngx_log_t *log,
    ngx_msec_t delay);

/* one round soon (within delay ms), unless one is due sooner or busy */
void ngx_dr_periodic_kick(ngx_dr_periodic_t *job, ngx_log_t *log,
    ngx_msec_t delay);


#endif /* _NGX_DR_PERIODIC_H_INCLUDED_ */

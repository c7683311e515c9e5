
/*
 * Domain Runner: one prompt put to one model, of a probe or of the queue.
 */


#ifndef _NGX_DR_JOB_H_INCLUDED_
#define _NGX_DR_JOB_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_dr_llm.h"
#include "ngx_dr_provider.h"
#include "ngx_dr_budget.h"


/* the longest answer asked for, in tokens */
#define NGX_DR_JOB_MAX_TOKENS     600
#define NGX_DR_JOB_TIMEOUT        60000
#define NGX_DR_JOB_MAX_ANSWER     (1024 * 1024)

/*
 * What a call could cost is reserved before it leaves: a prompt counts at
 * most a token a byte, and the providers frame the message with a few
 * more; the answer, at most NGX_DR_JOB_MAX_TOKENS
 */
#define NGX_DR_JOB_FRAME_TOKENS   32

/* a call no budget has room for is asked again after this, and up to as
 * much again at random */
#define NGX_DR_JOB_DEFER          5000


typedef struct ngx_dr_job_s  ngx_dr_job_t;

typedef void (*ngx_dr_job_done_pt)(ngx_dr_job_t *job);


struct ngx_dr_job_s {
    /* in */
    ngx_pool_t               *pool;
    ngx_log_t                *log;
    ngx_str_t                 request_id;
    u_char                   *trace_id;     /* 32 hex digits */
    ngx_uint_t                max_attempts;
    ngx_dr_job_done_pt        done;
    void                     *data;
    ngx_dr_provider_t        *provider;
    ngx_str_t                 model;        /* NUL ended */
    ngx_str_t                 prompt;       /* its name, NUL ended */
    char                     *text;         /* the prompt sent */
    ngx_uint_t                model_index;  /* in the provider's models */
    double                    price_in;     /* dollars a million tokens */
    double                    price_out;
    u_char                   *run_id;       /* NUL ended; NULL: a probe */

    /* out, valid in done() */
    ngx_dr_answer_t           answer;
    long                      status;
    ngx_msec_t                latency;
    ngx_uint_t                attempts;
    ngx_str_t                *key;          /* of the last attempt */
    unsigned                  parsed:1;     /* answer holds memory */
    unsigned                  simulated:1;
    unsigned                  deferred:1;   /* not sent: no budget had
                                               room (or could say so) */

    /* private */
    ngx_dr_llm_call_t         call;
    ngx_event_t               wait;
    ngx_dr_budget_hold_t      hold;         /* the attempt's reservation */
    unsigned                  paid:1;       /* its tokens taken ahead */
    unsigned                  allowed:1;    /* by the breaker, this try */
    unsigned                  calling:1;
};


/* done() is called once, perhaps before ngx_dr_job_start() returns */
void ngx_dr_job_start(ngx_dr_job_t *job);

/* what the job holds: its wait, its call's place, its parsed answer */
void ngx_dr_job_release(ngx_dr_job_t *job);


#endif /* _NGX_DR_JOB_H_INCLUDED_ */

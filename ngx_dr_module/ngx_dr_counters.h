
/*
 * Domain Runner: the counters every part writes, in shared memory.
 *
 * A leaf, as nginx core's ngx_stat_* are: the parts add to them with
 * atomic operations (no lock on any request's path); the Prometheus
 * renderer (ngx_dr_metrics.c) and the health summary only read them.
 * They are the sum over all workers and survive a reload.
 */


#ifndef _NGX_DR_COUNTERS_H_INCLUDED_
#define _NGX_DR_COUNTERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_DR_M_BUCKETS       12      /* the last one is +Inf */
#define NGX_DR_M_TIERS         16
#define NGX_DR_M_WORKERS       64
#define NGX_DR_M_PROVIDERS     16
#define NGX_DR_M_MODELS        4       /* per provider */

/* the endpoint groups of the requests the module answers */
#define NGX_DR_GROUP_HEALTH        0
#define NGX_DR_GROUP_STATS         1
#define NGX_DR_GROUP_RANKINGS      2
#define NGX_DR_GROUP_PUBLIC        3
#define NGX_DR_GROUP_COMPETITIVE   4
#define NGX_DR_GROUP_TICKER        5
#define NGX_DR_GROUP_CATEGORIES    6
#define NGX_DR_GROUP_SHADOWS       7
#define NGX_DR_GROUP_FIRE_ALARM    8
#define NGX_DR_GROUP_DRIFT         9
#define NGX_DR_GROUP_CONSENSUS     10
#define NGX_DR_GROUP_VOLATILITY    11
#define NGX_DR_GROUP_TIME_SERIES   12
#define NGX_DR_GROUP_PROVIDERS     13
#define NGX_DR_GROUP_OPENAPI       14
#define NGX_DR_GROUP_ADMIN         15
#define NGX_DR_GROUP_USAGE         16
#define NGX_DR_GROUP_JOLT          17
#define NGX_DR_GROUP_SEO           18
#define NGX_DR_GROUP_OTHER         19
#define NGX_DR_M_GROUPS            20

/* status classes 1xx .. 5xx, at index class - 1 */
#define NGX_DR_M_CLASSES           5

/* provider call outcomes */
#define NGX_DR_M_CALL_OK           0
#define NGX_DR_M_CALL_429          1
#define NGX_DR_M_CALL_5XX          2
#define NGX_DR_M_CALL_4XX          3
#define NGX_DR_M_CALL_TIMEOUT      4
#define NGX_DR_M_CALL_ERROR        5
#define NGX_DR_M_CALL_BAD          6
#define NGX_DR_M_CALL_BREAKER      7
#define NGX_DR_M_CALL_OUTCOMES     8

/* breaker states */
#define NGX_DR_BREAKER_CLOSED      0
#define NGX_DR_BREAKER_OPEN        1
#define NGX_DR_BREAKER_HALF_OPEN   2
#define NGX_DR_BREAKER_STATES      3

/* auth outcomes */
#define NGX_DR_M_AUTH_OK           0
#define NGX_DR_M_AUTH_MISSING      1
#define NGX_DR_M_AUTH_INVALID      2
#define NGX_DR_M_AUTH_EXPIRED      3
#define NGX_DR_M_AUTH_REVOKED      4
#define NGX_DR_M_AUTH_UNAVAILABLE  5
#define NGX_DR_M_AUTH_ANONYMOUS    6
#define NGX_DR_M_AUTH_OUTCOMES     7

/* rate-limit decisions: NGX_DR_LIMIT_PASSED, _REJECTED, _DRY_RUN */
#define NGX_DR_M_LIMIT_DECISIONS   4

/* query outcomes follow NGX_DR_PG_OK, _UNAVAILABLE, _FAILED */
#define NGX_DR_M_PG_OUTCOMES       3

/* job states, in the order of the queue's figures */
#define NGX_DR_JOB_QUEUED          0
#define NGX_DR_JOB_LEASED          1
#define NGX_DR_JOB_DONE            2
#define NGX_DR_JOB_FAILED          3
#define NGX_DR_JOB_DEAD            4
#define NGX_DR_JOB_STATES          5

/* the spend budgets the scrape shows, at most, and their names' length */
#define NGX_DR_M_BUDGETS           64
#define NGX_DR_M_SCOPE_LEN         80
#define NGX_DR_M_PERIOD_LEN        8


/* a spend budget's figures in its current window, in micro-dollars */
typedef struct {
    u_char               scope[NGX_DR_M_SCOPE_LEN];     /* NUL ended */
    u_char               period[NGX_DR_M_PERIOD_LEN];
    uint64_t             limit;
    uint64_t             spent;
    uint64_t             reserved;
} ngx_dr_counters_budget_t;


typedef struct {
    ngx_uint_t           version;

    ngx_atomic_t         requests[NGX_DR_M_GROUPS][NGX_DR_M_CLASSES];
    ngx_atomic_t         latency[NGX_DR_M_GROUPS][NGX_DR_M_BUCKETS];
    ngx_atomic_t         latency_us[NGX_DR_M_GROUPS];

    /* the last row of auth: no tier */
    ngx_atomic_t         auth[NGX_DR_M_TIERS + 1][NGX_DR_M_AUTH_OUTCOMES];
    ngx_atomic_t         limit[NGX_DR_M_TIERS][NGX_DR_M_LIMIT_DECISIONS];

    ngx_atomic_t         pg_queries[NGX_DR_M_PG_OUTCOMES];
    ngx_atomic_t         pg_latency[NGX_DR_M_BUCKETS];
    ngx_atomic_t         pg_latency_us;
    ngx_atomic_t         pg_connect_errors;
    ngx_atomic_t         pg_open[NGX_DR_M_WORKERS];
    ngx_atomic_t         pg_busy[NGX_DR_M_WORKERS];
    ngx_atomic_t         pg_waiting[NGX_DR_M_WORKERS];

    ngx_atomic_t         calls[NGX_DR_M_PROVIDERS][NGX_DR_M_MODELS]
                              [NGX_DR_M_CALL_OUTCOMES];
    ngx_atomic_t         call_latency[NGX_DR_M_PROVIDERS][NGX_DR_M_BUCKETS];
    ngx_atomic_t         call_latency_us[NGX_DR_M_PROVIDERS];
    ngx_atomic_t         tokens_in[NGX_DR_M_PROVIDERS];
    ngx_atomic_t         tokens_out[NGX_DR_M_PROVIDERS];
    ngx_atomic_t         cost_micro[NGX_DR_M_PROVIDERS];

    /* the circuit breaker of each provider, shared by the workers */
    ngx_atomic_t         breaker[NGX_DR_M_PROVIDERS];
    ngx_atomic_t         breaker_failures[NGX_DR_M_PROVIDERS];
    ngx_atomic_t         breaker_opened[NGX_DR_M_PROVIDERS];

    /* provider calls in flight in each worker, and the most so far */
    ngx_atomic_t         calls_in_flight[NGX_DR_M_WORKERS];
    ngx_atomic_t         calls_in_flight_max[NGX_DR_M_WORKERS];

    /* the queue's figures, refreshed in the background */
    ngx_atomic_t         jobs[NGX_DR_JOB_STATES];
    ngx_atomic_t         runs_running;
    ngx_atomic_t         queue_known;

    /* the spend budgets, refreshed in the background, under the lock */
    ngx_uint_t           nbudgets;
    ngx_uint_t           budgets_known;
    ngx_dr_counters_budget_t  budgets[NGX_DR_M_BUDGETS];
} ngx_dr_counters_t;


extern ngx_dr_counters_t  *ngx_dr_counters;
extern ngx_str_t           ngx_dr_counters_groups[];
extern const char         *ngx_dr_counters_le[];


ngx_int_t ngx_dr_counters_zone(ngx_conf_t *cf, void *tag);
ngx_uint_t ngx_dr_counters_bucket(ngx_msec_t ms);

void ngx_dr_counters_request(ngx_uint_t group, ngx_uint_t status,
    ngx_msec_t ms);
void ngx_dr_counters_pg(ngx_uint_t open, ngx_uint_t busy,
    ngx_uint_t waiting);
void ngx_dr_counters_pg_query(ngx_uint_t rc, ngx_msec_t ms);
void ngx_dr_counters_pg_connect_error(void);
void ngx_dr_counters_in_flight(ngx_uint_t n);
void ngx_dr_counters_auth(ngx_uint_t tier, ngx_uint_t outcome);
void ngx_dr_counters_limit(ngx_uint_t tier, ngx_uint_t decision);
void ngx_dr_counters_call(ngx_uint_t provider, ngx_uint_t model,
    ngx_uint_t outcome, ngx_msec_t ms, long tokens_in, long tokens_out,
    long long cost_micro);
void ngx_dr_counters_queue(ngx_atomic_uint_t *jobs, ngx_atomic_uint_t runs);
void ngx_dr_counters_budgets_set(ngx_dr_counters_budget_t *b, ngx_uint_t n);
ngx_int_t ngx_dr_counters_budgets_get(ngx_dr_counters_budget_t *b);


#endif /* _NGX_DR_COUNTERS_H_INCLUDED_ */

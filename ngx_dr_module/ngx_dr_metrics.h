
/*
 * Domain Runner: metrics: counters in shared memory, health.
 */


#ifndef _NGX_DR_METRICS_H_INCLUDED_
#define _NGX_DR_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_DR_M_GROUPS        17
#define NGX_DR_M_BUCKETS       12      /* the last one is +Inf */
#define NGX_DR_M_TIERS         16
#define NGX_DR_M_WORKERS       64
#define NGX_DR_M_PROVIDERS     16
#define NGX_DR_M_MODELS        4       /* per provider */

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

/* auth outcomes */
#define NGX_DR_M_AUTH_OK           0
#define NGX_DR_M_AUTH_MISSING      1
#define NGX_DR_M_AUTH_INVALID      2
#define NGX_DR_M_AUTH_EXPIRED      3
#define NGX_DR_M_AUTH_REVOKED      4
#define NGX_DR_M_AUTH_UNAVAILABLE  5
#define NGX_DR_M_AUTH_ANONYMOUS    6
#define NGX_DR_M_AUTH_OUTCOMES     7

/* query outcomes follow NGX_DR_PG_OK, _UNAVAILABLE, _FAILED */
#define NGX_DR_M_PG_OUTCOMES       3


typedef struct {
    ngx_uint_t           version;

    ngx_atomic_t         requests[NGX_DR_M_GROUPS][6];
    ngx_atomic_t         latency[NGX_DR_M_GROUPS][NGX_DR_M_BUCKETS];
    ngx_atomic_t         latency_us[NGX_DR_M_GROUPS];

    ngx_atomic_t         auth[NGX_DR_M_TIERS + 1][NGX_DR_M_AUTH_OUTCOMES];
    ngx_atomic_t         limit[NGX_DR_M_TIERS][4];

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
    ngx_atomic_t         jobs[5];
    ngx_atomic_t         runs_running;
    ngx_atomic_t         queue_known;
} ngx_dr_counters_t;


extern ngx_dr_counters_t  *ngx_dr_counters;
extern ngx_str_t           ngx_dr_metrics_groups[];


ngx_int_t ngx_dr_metrics_zone(ngx_conf_t *cf);
ngx_int_t ngx_dr_metrics_init(ngx_conf_t *cf);
ngx_int_t ngx_dr_metrics_init_process(ngx_cycle_t *cycle);
ngx_uint_t ngx_dr_metrics_bucket(ngx_msec_t ms);
void ngx_dr_metrics_pg(ngx_uint_t open, ngx_uint_t busy,
    ngx_uint_t waiting);
void ngx_dr_metrics_in_flight(ngx_uint_t n);
void ngx_dr_metrics_pg_query(ngx_uint_t rc, ngx_msec_t ms);
void ngx_dr_metrics_auth(void *tier, ngx_uint_t outcome);
void ngx_dr_metrics_limit(void *tier, ngx_uint_t decision);
void ngx_dr_metrics_call(ngx_uint_t provider, ngx_uint_t model,
    ngx_uint_t outcome, ngx_msec_t ms, long tokens_in, long tokens_out,
    long long cost_micro);
char *ngx_dr_metrics_handler_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_DR_METRICS_H_INCLUDED_ */


/*
 * Domain Runner: token buckets and daily quotas in shared memory.
 */


#ifndef _NGX_DR_LIMIT_H_INCLUDED_
#define _NGX_DR_LIMIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_DR_LIMIT_PASSED    1
#define NGX_DR_LIMIT_REJECTED  2
#define NGX_DR_LIMIT_DRY_RUN   3

/* what ngx_dr_limit_collect() takes from the buckets */
#define NGX_DR_LIMIT_PENDING   0       /* daily usage not yet flushed */
#define NGX_DR_LIMIT_CONSUMED  1       /* tokens the cluster was not told */
#define NGX_DR_LIMIT_REMOTE    2       /* tokens the other nodes took */

#define NGX_DR_LIMIT_DAY       86400


typedef struct {
    ngx_str_t            name;
    ngx_uint_t           rate;         /* requests per period */
    ngx_msec_t           period;       /* in ms: 1000, 60000, ... */
    ngx_uint_t           burst;
    ngx_uint_t           daily;        /* 0: no daily quota */
} ngx_dr_tier_t;


/* a bucket a request takes from; the outcome in its last fields */
typedef struct {
    ngx_str_t            name;         /* for the headers: tier or policy */
    ngx_str_t            key;
    ngx_dr_tier_t       *tier;         /* its rate, burst, daily quota */
    ngx_uint_t           cost;
    int64_t              key_id;       /* a key's own bucket */
    ngx_uint_t           daily_seed;   /* what the key used today */
    unsigned             usage:1;      /* counts toward the key's usage */

    ngx_uint_t           remaining;
    time_t               reset;
    time_t               retry_after;
    ngx_msec_t           retry_ms;
    unsigned             refused:1;
} ngx_dr_limit_want_t;

#define NGX_DR_LIMIT_WANTS     8


typedef struct {
    ngx_uint_t           most;         /* the most constraining want */
    ngx_uint_t           remaining;
    time_t               reset;        /* s until the bucket is full */
    time_t               retry_after;  /* s until a token, if rejected */
    ngx_msec_t           retry_ms;     /* the same, in ms */
    ngx_uint_t           daily_remaining;
    time_t               daily_reset;  /* s until the next UTC day */
    unsigned             passed:1;
    unsigned             daily_exhausted:1;
    unsigned             zone_full:1;   /* refused: no room for a bucket */
} ngx_dr_limit_result_t;


/* one row of a batch sent to PostgreSQL */
typedef struct {
    ngx_str_t            key;
    int64_t              key_id;
    uint32_t             day;
    uint64_t             n;
    uint64_t             rejected;
    uint64_t             daily;        /* of the daily quota, on "day" */
    unsigned             recent:1;     /* the others' n is news */
} ngx_dr_limit_row_t;


/* what a policy's buckets are per */
#define NGX_DR_POLICY_BY_KEY       0   /* key; client network if none */
#define NGX_DR_POLICY_BY_ADDRESS   1   /* client network */
#define NGX_DR_POLICY_BY_VARIABLE  2


/* dr_limit_policy: a named bucket, its rate per tier */
typedef struct {
    ngx_dr_tier_t        rate;         /* name: the policy's; daily 0 */
    ngx_array_t         *tiers;        /* of ngx_dr_tier_t, name a tier */
    ngx_uint_t           by;
    ngx_int_t            index;        /* of the by= variable */
} ngx_dr_policy_t;


/* dr_limit of a location */
typedef struct {
    ngx_str_t                  name;
    ngx_dr_policy_t           *policy;
    ngx_uint_t                 cost;
    ngx_http_complex_value_t  *cost_cv;
} ngx_dr_limit_ref_t;


/* the zone's figures, for the metrics */
typedef struct {
    ngx_str_t            zone;
    ngx_uint_t           buckets;
    ngx_uint_t           anonymous;
    ngx_atomic_uint_t    evictions;
    ngx_atomic_uint_t    refused;
} ngx_dr_limit_stats_t;


typedef struct {
    ngx_array_t         *tiers;        /* of ngx_dr_tier_t */
    ngx_array_t         *policies;     /* of ngx_dr_policy_t */
    ngx_shm_zone_t      *shm_zone;
    ngx_msec_t           sync_interval;
    ngx_str_t            node;
    ngx_msec_t           flush_interval;
    ngx_uint_t           anonymous_max;    /* buckets of the reserve */
    ngx_uint_t           anonymous_v4;     /* prefix length of a client */
    ngx_uint_t           anonymous_v6;
} ngx_dr_limit_conf_t;


char *ngx_dr_limit_tier(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_dr_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_dr_limit_sync(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_dr_limit_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_dr_limit_ref(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_dr_limit_refs_resolve(ngx_conf_t *cf, ngx_dr_limit_conf_t *lcf,
    ngx_array_t *limits);
ngx_dr_policy_t *ngx_dr_limit_find_policy(ngx_dr_limit_conf_t *lcf,
    ngx_str_t *name);
ngx_dr_tier_t *ngx_dr_limit_policy_rate(ngx_dr_policy_t *policy,
    ngx_dr_tier_t *tier);
char *ngx_dr_limit_anonymous_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_dr_limit_init_conf(ngx_conf_t *cf, ngx_dr_limit_conf_t *lcf);

ngx_dr_tier_t *ngx_dr_limit_find_tier(ngx_dr_limit_conf_t *lcf,
    u_char *name, size_t len);
ngx_int_t ngx_dr_limit_client(ngx_dr_limit_conf_t *lcf, ngx_connection_t *c,
    ngx_pool_t *pool, ngx_str_t *label);
ngx_uint_t ngx_dr_limit_tier_index(ngx_dr_limit_conf_t *lcf,
    ngx_dr_tier_t *tier);
ngx_int_t ngx_dr_limit_take(ngx_dr_limit_conf_t *lcf,
    ngx_dr_limit_want_t *wants, ngx_uint_t n, ngx_dr_limit_result_t *res);
ngx_int_t ngx_dr_limit_take_call(ngx_dr_limit_conf_t *lcf, ngx_str_t *key,
    ngx_dr_tier_t *tier, ngx_str_t *tkey, ngx_dr_tier_t *ttier,
    ngx_uint_t tokens, ngx_uint_t reserve, ngx_dr_limit_result_t *res);
ngx_int_t ngx_dr_limit_stats(ngx_dr_limit_conf_t *lcf,
    ngx_dr_limit_stats_t *st);
ngx_int_t ngx_dr_limit_tokens(ngx_dr_limit_conf_t *lcf, ngx_str_t *key);
ngx_int_t ngx_dr_limit_usage(ngx_dr_limit_conf_t *lcf, ngx_str_t *key,
    ngx_dr_limit_row_t *row);
ngx_int_t ngx_dr_limit_headers(ngx_http_request_t *r,
    ngx_dr_limit_want_t *wants, ngx_uint_t n, ngx_dr_limit_result_t *res);
ngx_array_t *ngx_dr_limit_collect(ngx_dr_limit_conf_t *lcf,
    ngx_pool_t *pool, ngx_uint_t what);
void ngx_dr_limit_apply(ngx_dr_limit_conf_t *lcf, ngx_array_t *rows,
    ngx_uint_t what);


#endif /* _NGX_DR_LIMIT_H_INCLUDED_ */


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


typedef struct {
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


typedef struct {
    ngx_array_t         *tiers;        /* of ngx_dr_tier_t */
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
char *ngx_dr_limit_anonymous_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_dr_limit_init_conf(ngx_conf_t *cf, ngx_dr_limit_conf_t *lcf);

ngx_dr_tier_t *ngx_dr_limit_find_tier(ngx_dr_limit_conf_t *lcf,
    u_char *name, size_t len);
ngx_int_t ngx_dr_limit_client(ngx_dr_limit_conf_t *lcf, ngx_connection_t *c,
    ngx_pool_t *pool, ngx_str_t *label);
ngx_uint_t ngx_dr_limit_tier_index(ngx_dr_limit_conf_t *lcf,
    ngx_dr_tier_t *tier);
ngx_int_t ngx_dr_limit_take(ngx_dr_limit_conf_t *lcf, ngx_str_t *key,
    int64_t key_id, ngx_dr_tier_t *tier, ngx_uint_t daily_seed,
    ngx_dr_limit_result_t *res);
ngx_int_t ngx_dr_limit_take_call(ngx_dr_limit_conf_t *lcf, ngx_str_t *key,
    ngx_dr_tier_t *tier, ngx_str_t *tkey, ngx_dr_tier_t *ttier,
    ngx_uint_t tokens, ngx_uint_t reserve, ngx_dr_limit_result_t *res);
ngx_int_t ngx_dr_limit_tokens(ngx_dr_limit_conf_t *lcf, ngx_str_t *key);
ngx_int_t ngx_dr_limit_usage(ngx_dr_limit_conf_t *lcf, ngx_str_t *key,
    ngx_dr_limit_row_t *row);
ngx_int_t ngx_dr_limit_headers(ngx_http_request_t *r, ngx_dr_tier_t *tier,
    ngx_dr_limit_result_t *res);
ngx_array_t *ngx_dr_limit_collect(ngx_dr_limit_conf_t *lcf,
    ngx_pool_t *pool, ngx_uint_t what);
void ngx_dr_limit_apply(ngx_dr_limit_conf_t *lcf, ngx_array_t *rows,
    ngx_uint_t what);


#endif /* _NGX_DR_LIMIT_H_INCLUDED_ */

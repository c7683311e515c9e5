
/*
 * Domain Runner: what every part of the module shares: its configuration
 * and the state of a request.  Each part's functions are in its own
 * header; docs/architecture.md draws the layers.
 */


#ifndef _NGX_DR_MODULE_H_INCLUDED_
#define _NGX_DR_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_pg.h"
#include "ngx_dr_cache.h"
#include "ngx_dr_limit.h"


#define NGX_DR_VERSION  "0.1.0"


#define NGX_DR_AUTH_OFF       0
#define NGX_DR_AUTH_OPTIONAL  1
#define NGX_DR_AUTH_REQUIRED  2

/* a key not in the cache while the database is unreachable */
#define NGX_DR_AUTH_FAIL_CLOSED  0     /* 503 */
#define NGX_DR_AUTH_FAIL_OPEN    1     /* let through as anonymous */


/* an event's severity: one at dr_jolt_severity or above jolts */
#define NGX_DR_SEVERITY_LOW       0
#define NGX_DR_SEVERITY_MEDIUM    1
#define NGX_DR_SEVERITY_HIGH      2
#define NGX_DR_SEVERITY_CRITICAL  3


/* a server secret of the API keys, and its fingerprint */
typedef struct {
    ngx_str_t            value;
    u_char               version[17];
} ngx_dr_secret_t;


typedef struct {
    ngx_dr_pg_conf_t     pg;
    ngx_dr_cache_conf_t  cache;
    ngx_dr_limit_conf_t  limit;

    ngx_array_t         *providers;     /* of ngx_dr_provider_t */
    ngx_array_t         *budgets;       /* of ngx_dr_budget_t */
    ngx_int_t            request_id;    /* index of $request_id */
    ngx_flag_t           runner;
    ngx_msec_t           runner_lease;
    ngx_uint_t           runner_jobs;       /* held by a worker at once */
    time_t               schedule;      /* seconds; 0: off */
    ngx_uint_t           jolt_severity; /* NGX_DR_SEVERITY_* */

    ngx_dr_secret_t      key_secret;
    ngx_dr_secret_t      key_secret_previous;  /* while rotating */
    ngx_shm_zone_t      *key_zone;
    time_t               key_ttl;
    time_t               key_negative_ttl;
    ngx_uint_t           key_unknown_max;  /* unknown prefixes cached */

    ngx_dr_secret_t      jwt_secret;    /* of the accounts' tokens */
    time_t               jwt_ttl;
    void                *password_pool; /* ngx_thread_pool_t: scrypt */
} ngx_dr_main_conf_t;


typedef struct {
    ngx_flag_t           api;
    ngx_flag_t           admin;
    ngx_array_t         *cors;          /* of ngx_str_t; NULL: no CORS */

    ngx_uint_t           auth;
    ngx_uint_t           auth_fail;     /* NGX_DR_AUTH_FAIL_* */
    ngx_flag_t           hide_credentials;
    ngx_array_t         *limits;        /* of ngx_dr_limit_ref_t */
    ngx_flag_t           limit_dry_run;
    ngx_uint_t           limit_status;
    ngx_uint_t           limit_log_level;
} ngx_dr_loc_conf_t;


typedef struct ngx_dr_request_s  ngx_dr_request_t;

/* the outcome of a request's query: the status to finalize it with */
typedef ngx_int_t (*ngx_dr_http_result_pt)(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);


/* what the module knows of a request, kept across internal redirects */
struct ngx_dr_request_s {
    void                    *api;       /* ngx_dr_api_ctx_t */
    void                    *account;   /* ngx_dr_account_ctx_t */

    ngx_uint_t               auth_state;
    ngx_int_t                auth_rc;
    int64_t                  key_id;
    ngx_dr_tier_t           *tier;
    ngx_str_t                key_label; /* "42" or the client address */
    ngx_uint_t               limit_status;
    ngx_dr_limit_result_t    limit;
    ngx_str_t                new_key;   /* created by the admin API */
    u_char                  *admin;     /* an admin answer's part */
    ngx_str_t                request_id;
    u_char                   prefix[16];
    u_char                   hash[32];
    ngx_dr_http_result_pt    query_done;
    ngx_dr_limit_want_t     *wants;     /* the buckets it took from */
    ngx_uint_t               nwants;
    ngx_str_t                key_name;
    ngx_str_t                secret;    /* of the key sent, in its header */
    int64_t                  account_id;    /* whose key or token it is */
    int64_t                  jwt_gen;       /* an access token's */
    unsigned                 limited:1;
    unsigned                 jwt:1;     /* an access token, not a key */
    unsigned                 bearer:1;  /* the key came as a Bearer */
};


extern ngx_module_t  ngx_http_dr_module;


#endif /* _NGX_DR_MODULE_H_INCLUDED_ */

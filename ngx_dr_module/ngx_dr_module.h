
/*
 * Domain Runner: the common header of every part of the module.
 */


#ifndef _NGX_DR_MODULE_H_INCLUDED_
#define _NGX_DR_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_pg.h"
#include "ngx_dr_json.h"
#include "ngx_dr_cache.h"
#include "ngx_dr_limit.h"
#include "ngx_dr_metrics.h"
#include "ngx_dr_llm.h"


#define NGX_DR_VERSION  "0.1.0"


#define NGX_DR_AUTH_OFF       0
#define NGX_DR_AUTH_OPTIONAL  1
#define NGX_DR_AUTH_REQUIRED  2


typedef struct {
    ngx_dr_pg_conf_t     pg;
    ngx_dr_cache_conf_t  cache;
    ngx_dr_limit_conf_t  limit;

    ngx_array_t         *providers;     /* of ngx_dr_provider_t */
    ngx_int_t            request_id;    /* index of $request_id */
    ngx_flag_t           runner;
    ngx_msec_t           runner_lease;
    ngx_uint_t           runner_jobs;       /* held by a worker at once */
    time_t               schedule;      /* seconds; 0: off */

    ngx_str_t            key_secret;
    ngx_shm_zone_t      *key_zone;
    time_t               key_ttl;
    time_t               key_negative_ttl;
} ngx_dr_main_conf_t;


typedef struct {
    ngx_flag_t           api;
    ngx_flag_t           admin;
    ngx_array_t         *cors;          /* of ngx_str_t; NULL: no CORS */

    ngx_uint_t           auth;
    ngx_flag_t           limit_dry_run;
    ngx_uint_t           limit_status;
    ngx_uint_t           limit_log_level;
} ngx_dr_loc_conf_t;


/* what the module knows of a request, kept across internal redirects */
typedef struct {
    void                    *api;       /* ngx_dr_api_ctx_t */

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
    unsigned                 limited:1;
} ngx_dr_request_t;


extern ngx_module_t  ngx_http_dr_module;


typedef ngx_int_t (*ngx_dr_api_result_pt)(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);

/* the outcome of a score check: NGX_OK written, NGX_DECLINED jobs left */
typedef void (*ngx_dr_scored_pt)(void *data, ngx_int_t rc);


/* the answer's cache policy for ngx_dr_http_send() */
typedef struct {
    u_char              *etag;          /* NGX_DR_CACHE_ETAG_LEN bytes */
    time_t               max_age;
    time_t               age;
    unsigned             cacheable:1;
    unsigned             aged:1;
} ngx_dr_http_cache_t;


ngx_dr_request_t *ngx_dr_request(ngx_http_request_t *r);
ngx_str_t *ngx_dr_request_id(ngx_http_request_t *r);

ngx_int_t ngx_dr_api_handler(ngx_http_request_t *r);
ngx_uint_t ngx_dr_api_group(ngx_str_t *uri);
ngx_int_t ngx_dr_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_dr_probe_handler(ngx_http_request_t *r);
ngx_int_t ngx_dr_providers_handler(ngx_http_request_t *r);
ngx_int_t ngx_dr_rescore_handler(ngx_http_request_t *r, const char *domains);
ngx_int_t ngx_dr_runner_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_scores_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_schedule_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_api_query(ngx_http_request_t *r, ngx_uint_t flags,
    ngx_msec_t timeout, const char *sql, int nparams, const char **params,
    ngx_dr_api_result_pt done);
ngx_int_t ngx_dr_api_unavailable(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
ngx_int_t ngx_dr_api_init_process(ngx_cycle_t *cycle);
char *ngx_dr_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

char *ngx_dr_auth_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_dr_auth_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_dr_auth_init(ngx_conf_t *cf);
ngx_int_t ngx_dr_auth_init_process(ngx_cycle_t *cycle);
void ngx_dr_auth_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_auth_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_dr_auth_hash(ngx_dr_main_conf_t *dmcf, u_char *secret,
    size_t len, u_char *out);

u_char *ngx_dr_cstr(ngx_pool_t *pool, ngx_str_t *s);

ngx_int_t ngx_dr_http_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body, ngx_dr_http_cache_t *cache);

ngx_int_t ngx_dr_health_live(ngx_http_request_t *r);
ngx_int_t ngx_dr_health_ready(ngx_http_request_t *r);
ngx_int_t ngx_dr_health_status(ngx_http_request_t *r);


#endif /* _NGX_DR_MODULE_H_INCLUDED_ */


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


#define NGX_DR_VERSION  "0.1.0"


typedef struct {
    ngx_dr_pg_conf_t     pg;
    ngx_dr_cache_conf_t  cache;
} ngx_dr_main_conf_t;


typedef struct {
    ngx_flag_t           api;
    ngx_array_t         *cors;          /* of ngx_str_t; NULL: no CORS */
} ngx_dr_loc_conf_t;


extern ngx_module_t  ngx_http_dr_module;


typedef ngx_int_t (*ngx_dr_api_result_pt)(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);


/* the answer's cache policy for ngx_dr_http_send() */
typedef struct {
    u_char              *etag;          /* NGX_DR_CACHE_ETAG_LEN bytes */
    time_t               max_age;
    time_t               age;
    unsigned             cacheable:1;
    unsigned             aged:1;
} ngx_dr_http_cache_t;


ngx_int_t ngx_dr_api_handler(ngx_http_request_t *r);
ngx_int_t ngx_dr_api_query(ngx_http_request_t *r, ngx_uint_t flags,
    ngx_msec_t timeout, const char *sql, int nparams, const char **params,
    ngx_dr_api_result_pt done);
ngx_int_t ngx_dr_api_unavailable(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
ngx_int_t ngx_dr_api_init_process(ngx_cycle_t *cycle);
char *ngx_dr_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

ngx_int_t ngx_dr_http_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body, ngx_dr_http_cache_t *cache);

ngx_int_t ngx_dr_health_live(ngx_http_request_t *r);
ngx_int_t ngx_dr_health_ready(ngx_http_request_t *r);
ngx_int_t ngx_dr_health_status(ngx_http_request_t *r);


#endif /* _NGX_DR_MODULE_H_INCLUDED_ */


/*
 * Domain Runner: the HTTP responder, shared by every part that answers.
 */


#ifndef _NGX_DR_HTTP_H_INCLUDED_
#define _NGX_DR_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_dr_module.h"


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
ngx_int_t ngx_dr_request_actor(ngx_http_request_t *r, const char **params);

ngx_int_t ngx_dr_http_phase(ngx_conf_t *cf, ngx_http_phases phase,
    ngx_http_handler_pt handler);
ngx_int_t ngx_dr_http_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body, ngx_dr_http_cache_t *cache);
ngx_int_t ngx_dr_http_output(ngx_http_request_t *r, ngx_str_t *body);
ngx_int_t ngx_dr_http_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value, ngx_table_elt_t **elt);
ngx_str_t *ngx_dr_http_cors_origin(ngx_http_request_t *r);
ngx_uint_t ngx_dr_http_is_preflight(ngx_http_request_t *r);
ngx_int_t ngx_dr_http_preflight(ngx_http_request_t *r);
ngx_uint_t ngx_dr_http_headers_in(ngx_http_request_t *r, const char *name,
    ngx_table_elt_t **out, ngx_uint_t max);
ngx_int_t ngx_dr_http_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *out);

ngx_int_t ngx_dr_http_query(ngx_http_request_t *r, ngx_uint_t flags,
    ngx_msec_t timeout, const char *sql, int nparams, const char **params,
    ngx_dr_http_result_pt done);
ngx_int_t ngx_dr_http_unavailable(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);

ngx_int_t ngx_dr_json_dump(ngx_pool_t *pool, json_t *json, ngx_str_t *out);
ngx_int_t ngx_dr_json_send(ngx_http_request_t *r, ngx_uint_t status,
    json_t *body);
json_t *ngx_dr_json_column(PGresult *res);
ngx_int_t ngx_dr_http_written(ngx_http_request_t *r, ngx_dr_pg_query_t *q);
ngx_int_t ngx_dr_http_fields(ngx_http_request_t *r, json_t *body,
    const char *fields);
ngx_int_t ngx_dr_http_domain(ngx_http_request_t *r, u_char *in, size_t len,
    ngx_str_t *out);
ngx_int_t ngx_dr_http_body_domain(ngx_http_request_t *r, json_t *body,
    ngx_str_t *out);
ngx_int_t ngx_dr_json_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *fmt, ...);
json_t *ngx_dr_json_timestamp(time_t t);
json_t *ngx_dr_json_str(ngx_str_t *s);

u_char *ngx_dr_cstr(ngx_pool_t *pool, ngx_str_t *s);


#endif /* _NGX_DR_HTTP_H_INCLUDED_ */


/*
 * Domain Runner: the one JSON writer and the one error responder.
 */


#ifndef _NGX_DR_JSON_H_INCLUDED_
#define _NGX_DR_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


ngx_int_t ngx_dr_json_dump(ngx_pool_t *pool, json_t *json, ngx_str_t *out);
ngx_int_t ngx_dr_json_send(ngx_http_request_t *r, ngx_uint_t status,
    json_t *body);
ngx_int_t ngx_dr_http_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value, ngx_table_elt_t **elt);
ngx_str_t *ngx_dr_http_cors_origin(ngx_http_request_t *r);
ngx_uint_t ngx_dr_http_headers_in(ngx_http_request_t *r, const char *name,
    ngx_table_elt_t **out, ngx_uint_t max);
ngx_int_t ngx_dr_http_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *out);
ngx_int_t ngx_dr_json_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *fmt, ...);
json_t *ngx_dr_json_timestamp(time_t t);
json_t *ngx_dr_json_str(ngx_str_t *s);


#endif /* _NGX_DR_JSON_H_INCLUDED_ */

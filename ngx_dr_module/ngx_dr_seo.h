
/*
 * Domain Runner: SEO figures an operator imports, beside the memory
 * series.
 */


#ifndef _NGX_DR_SEO_H_INCLUDED_
#define _NGX_DR_SEO_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


extern const char  ngx_dr_seo_series_sql[];

ngx_int_t ngx_dr_seo_import(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);


#endif /* _NGX_DR_SEO_H_INCLUDED_ */

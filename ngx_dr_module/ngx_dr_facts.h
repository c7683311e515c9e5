
/*
 * Domain Runner: GET and POST /admin/facts, a domain's facts.
 */


#ifndef _NGX_DR_FACTS_H_INCLUDED_
#define _NGX_DR_FACTS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


ngx_int_t ngx_dr_facts_list(ngx_http_request_t *r, ngx_str_t *id);
ngx_int_t ngx_dr_facts_set(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);


#endif /* _NGX_DR_FACTS_H_INCLUDED_ */

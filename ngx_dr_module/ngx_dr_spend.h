
/*
 * Domain Runner: GET and POST /admin/budgets, the spend budgets.
 */


#ifndef _NGX_DR_SPEND_H_INCLUDED_
#define _NGX_DR_SPEND_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


ngx_int_t ngx_dr_spend_list(ngx_http_request_t *r);
ngx_int_t ngx_dr_spend_set(ngx_http_request_t *r, json_t *body);


#endif /* _NGX_DR_SPEND_H_INCLUDED_ */

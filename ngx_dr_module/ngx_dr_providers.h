
/*
 * Domain Runner: GET /admin/providers, the providers as configured.
 */


#ifndef _NGX_DR_PROVIDERS_H_INCLUDED_
#define _NGX_DR_PROVIDERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_dr_providers_handler(ngx_http_request_t *r);


#endif /* _NGX_DR_PROVIDERS_H_INCLUDED_ */

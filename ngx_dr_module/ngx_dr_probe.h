
/*
 * Domain Runner: POST /admin/probe, every model asked about a domain now.
 */


#ifndef _NGX_DR_PROBE_H_INCLUDED_
#define _NGX_DR_PROBE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_dr_probe_handler(ngx_http_request_t *r);


#endif /* _NGX_DR_PROBE_H_INCLUDED_ */

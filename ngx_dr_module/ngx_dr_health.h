
/*
 * Domain Runner: liveness, readiness and the health summary.
 */


#ifndef _NGX_DR_HEALTH_H_INCLUDED_
#define _NGX_DR_HEALTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_uint_t ngx_dr_health_path(ngx_str_t *uri);
ngx_int_t ngx_dr_health_live(ngx_http_request_t *r);
ngx_int_t ngx_dr_health_ready(ngx_http_request_t *r);
ngx_int_t ngx_dr_health_status(ngx_http_request_t *r);


#endif /* _NGX_DR_HEALTH_H_INCLUDED_ */

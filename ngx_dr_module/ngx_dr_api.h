
/*
 * Domain Runner: the public JSON API.
 */


#ifndef _NGX_DR_API_H_INCLUDED_
#define _NGX_DR_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


ngx_int_t ngx_dr_api_handler(ngx_http_request_t *r);
ngx_int_t ngx_dr_api_init(ngx_conf_t *cf);
ngx_int_t ngx_dr_api_init_process(ngx_cycle_t *cycle);
char *ngx_dr_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_DR_API_H_INCLUDED_ */

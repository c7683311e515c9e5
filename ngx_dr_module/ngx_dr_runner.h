
/*
 * Domain Runner: the crawl's queue runner, the probe and the scheduler.
 */


#ifndef _NGX_DR_RUNNER_H_INCLUDED_
#define _NGX_DR_RUNNER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


ngx_int_t ngx_dr_probe_handler(ngx_http_request_t *r);
ngx_int_t ngx_dr_providers_handler(ngx_http_request_t *r);
ngx_int_t ngx_dr_runner_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_schedule_init_process(ngx_cycle_t *cycle);


#endif /* _NGX_DR_RUNNER_H_INCLUDED_ */

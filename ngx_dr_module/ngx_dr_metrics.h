
/*
 * Domain Runner: the Prometheus exposition of the counters.
 */


#ifndef _NGX_DR_METRICS_H_INCLUDED_
#define _NGX_DR_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


char *ngx_dr_metrics_handler_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_DR_METRICS_H_INCLUDED_ */

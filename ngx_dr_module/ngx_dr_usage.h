
/*
 * Domain Runner: the daily usage flush and the cluster sync of the
 * limits, background jobs of worker 0.
 */


#ifndef _NGX_DR_USAGE_H_INCLUDED_
#define _NGX_DR_USAGE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_dr_limit.h"


ngx_int_t ngx_dr_usage_init_process(ngx_cycle_t *cycle,
    ngx_dr_limit_conf_t *lcf);


#endif /* _NGX_DR_USAGE_H_INCLUDED_ */

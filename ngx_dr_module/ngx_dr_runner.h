
/*
 * Domain Runner: the queue's workers.
 */


#ifndef _NGX_DR_RUNNER_H_INCLUDED_
#define _NGX_DR_RUNNER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


ngx_int_t ngx_dr_runner_init_process(ngx_cycle_t *cycle);


#endif /* _NGX_DR_RUNNER_H_INCLUDED_ */


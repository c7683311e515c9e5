
/*
 * Domain Runner: the job queue's figures, for the scrape and the health
 * summary, refreshed by worker 0 in the background.
 */


#ifndef _NGX_DR_QUEUE_H_INCLUDED_
#define _NGX_DR_QUEUE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


ngx_int_t ngx_dr_queue_init_process(ngx_cycle_t *cycle);


#endif /* _NGX_DR_QUEUE_H_INCLUDED_ */


/*
 * Domain Runner: scoring of stored runs.
 */


#ifndef _NGX_DR_SCORES_H_INCLUDED_
#define _NGX_DR_SCORES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


/* the outcome of a score check: NGX_OK written, NGX_DECLINED jobs left */
typedef void (*ngx_dr_scored_pt)(void *data, ngx_int_t rc);


ngx_int_t ngx_dr_rescore_handler(ngx_http_request_t *r, const char *domains);
ngx_int_t ngx_dr_scores_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_scores_check(u_char *run, u_char *domain, ngx_log_t *log,
    ngx_dr_scored_pt handler, void *data);


#endif /* _NGX_DR_SCORES_H_INCLUDED_ */

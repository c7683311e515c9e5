
/*
 * Domain Runner: a key's usage day by day, and the count of its errors.
 */


#ifndef _NGX_DR_REPORT_H_INCLUDED_
#define _NGX_DR_REPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the days of a report: at most, and when not asked */
#define NGX_DR_REPORT_DAYS_MAX   90
#define NGX_DR_REPORT_DAYS       30


ngx_int_t ngx_dr_report_init(ngx_conf_t *cf);
ngx_int_t ngx_dr_report_init_process(ngx_cycle_t *cycle);

ngx_int_t ngx_dr_report_handler(ngx_http_request_t *r, ngx_uint_t days);
ngx_int_t ngx_dr_report_admin(ngx_http_request_t *r);


#endif /* _NGX_DR_REPORT_H_INCLUDED_ */

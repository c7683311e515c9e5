
/*
 * Domain Runner: the admin API (keys of the admin tier only).
 */


#ifndef _NGX_DR_ADMIN_H_INCLUDED_
#define _NGX_DR_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


ngx_int_t ngx_dr_admin_handler(ngx_http_request_t *r);


#endif /* _NGX_DR_ADMIN_H_INCLUDED_ */

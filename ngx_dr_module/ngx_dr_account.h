
/*
 * Domain Runner: the accounts of the original public API: register,
 * log in, the account itself, a change of password.
 */


#ifndef _NGX_DR_ACCOUNT_H_INCLUDED_
#define _NGX_DR_ACCOUNT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_dr_account_init(ngx_conf_t *cf);

ngx_int_t ngx_dr_account_register(ngx_http_request_t *r);
ngx_int_t ngx_dr_account_login(ngx_http_request_t *r);
ngx_int_t ngx_dr_account_password(ngx_http_request_t *r);
ngx_int_t ngx_dr_account_me(ngx_http_request_t *r);


#endif /* _NGX_DR_ACCOUNT_H_INCLUDED_ */

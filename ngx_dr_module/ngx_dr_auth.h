
/*
 * Domain Runner: API keys: the access phase, the key cache, revocation.
 */


#ifndef _NGX_DR_AUTH_H_INCLUDED_
#define _NGX_DR_AUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


char *ngx_dr_auth_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_dr_auth_jwt_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_dr_auth_init(ngx_conf_t *cf);
void ngx_dr_auth_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_auth_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_dr_auth_hash(ngx_dr_main_conf_t *dmcf, ngx_uint_t previous,
    u_char *secret, size_t len, u_char *out);
ngx_int_t ngx_dr_auth_new_key(ngx_dr_main_conf_t *dmcf, ngx_pool_t *pool,
    ngx_str_t *key, u_char *prefix, u_char *hex);
ngx_int_t ngx_dr_auth_random(u_char *out, size_t n, const char *alphabet,
    size_t size);


#endif /* _NGX_DR_AUTH_H_INCLUDED_ */

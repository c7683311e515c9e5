
/*
 * Domain Runner: the key store: API keys looked up in PostgreSQL and kept
 * in a shared-memory cache for every worker.
 */


#ifndef _NGX_DR_KEYS_H_INCLUDED_
#define _NGX_DR_KEYS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


#define NGX_DR_KEY_PREFIX_LEN  8
#define NGX_DR_KEY_SECRET_LEN  32
#define NGX_DR_KEY_LEN         (3 + NGX_DR_KEY_PREFIX_LEN + 1 \
                                + NGX_DR_KEY_SECRET_LEN)


/* what the store knows of a key; key_id 0: no such key */
typedef struct {
    time_t               cached;
    time_t               expires;      /* 0: never */
    time_t               previous_until;  /* old secret accepted until */
    int64_t              key_id;
    int64_t              account_id;   /* 0: no account's */
    uint64_t             used_today;
    uint32_t             day;
    u_char               hash[32];
    u_char               previous[32]; /* the secret's before a rotation */
    uint32_t             generation;   /* the account's, for its tokens */
    u_char               tier[32];
    u_char               name[64];     /* for $dr_key_name, cut to fit */
    uint8_t              tier_len;
    uint8_t              name_len;
    unsigned             revoked:1;
} ngx_dr_key_t;


/* the outcome of a look-up: NGX_OK with key, or NGX_ERROR (no database) */
typedef void (*ngx_dr_keys_found_pt)(ngx_http_request_t *r,
    ngx_dr_key_t *key, ngx_int_t rc);


char *ngx_dr_keys_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_dr_keys_init_process(ngx_cycle_t *cycle);

ngx_int_t ngx_dr_keys_cached(ngx_dr_main_conf_t *dmcf, u_char *prefix,
    ngx_dr_key_t *key);
ngx_int_t ngx_dr_keys_lookup(ngx_http_request_t *r, u_char *prefix,
    ngx_dr_keys_found_pt found);


#endif /* _NGX_DR_KEYS_H_INCLUDED_ */


/*
 * Domain Runner: the response cache of the API, in shared memory.
 */


#ifndef _NGX_DR_CACHE_H_INCLUDED_
#define _NGX_DR_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_DR_CACHE_ETAG_LEN  18      /* a quoted 16-digit hex hash */


typedef struct {
    ngx_str_t            body;
    u_char               etag[NGX_DR_CACHE_ETAG_LEN];
    time_t               stored;
    ngx_uint_t           generation;
    unsigned             fresh:1;
} ngx_dr_cache_entry_t;


typedef struct {
    ngx_shm_zone_t      *shm_zone;
    time_t               ttl;
    time_t               stale;
} ngx_dr_cache_conf_t;


char *ngx_dr_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

ngx_int_t ngx_dr_cache_get(ngx_dr_cache_conf_t *ccf, ngx_str_t *key,
    ngx_pool_t *pool, ngx_dr_cache_entry_t *entry);
void ngx_dr_cache_put(ngx_dr_cache_conf_t *ccf, ngx_str_t *key,
    ngx_dr_cache_entry_t *entry, ngx_log_t *log);
void ngx_dr_cache_invalidate(ngx_dr_cache_conf_t *ccf);
ngx_int_t ngx_dr_cache_stats(ngx_dr_cache_conf_t *ccf,
    ngx_atomic_uint_t *hits, ngx_atomic_uint_t *misses,
    ngx_atomic_uint_t *evictions, ngx_atomic_uint_t *entries);
void ngx_dr_cache_etag(ngx_str_t *body, u_char *etag);


#endif /* _NGX_DR_CACHE_H_INCLUDED_ */

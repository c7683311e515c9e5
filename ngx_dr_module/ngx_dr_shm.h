
/*
 * Domain Runner: entries of shared-memory zones found by a string key.
 */


#ifndef _NGX_DR_SHM_H_INCLUDED_
#define _NGX_DR_SHM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * The head of every entry: rbtree node (keyed by the crc32 of the key,
 * then ordered by the key itself) and LRU link.  The key is kept inside
 * the entry; zones are mapped at one address in every worker, so the
 * pointer is valid everywhere.
 */

typedef struct {
    ngx_rbtree_node_t    node;
    ngx_queue_t          queue;
    u_char              *key;
    uint32_t             key_len;
} ngx_dr_shm_node_t;


/* the head of the shared part of every such zone */
typedef struct {
    ngx_uint_t           version;
    ngx_rbtree_t         rbtree;
    ngx_rbtree_node_t    sentinel;
    ngx_queue_t          lru;
} ngx_dr_shm_head_t;


/* what a zone of its own adds to a new head (queues of its own, ...) */
typedef void (*ngx_dr_shm_init_pt)(ngx_dr_shm_head_t *head);


/*
 * The zone's data in the configuration; the shared part of a zone holds
 * ngx_dr_shm_head_t as its first member, and more after it if it needs.
 */
typedef struct {
    ngx_dr_shm_head_t   *sh;
    ngx_dr_shm_init_pt   init;
    ngx_slab_pool_t     *shpool;
    size_t               size;         /* of *sh */
    ngx_uint_t           version;
    const char          *what;         /* the directive, for messages */
} ngx_dr_shm_ctx_t;


ngx_int_t ngx_dr_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data);
void ngx_dr_shm_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
ngx_dr_shm_node_t *ngx_dr_shm_lookup_locked(ngx_rbtree_t *tree,
    ngx_str_t *key, uint32_t hash);
ngx_shm_zone_t *ngx_dr_shm_add(ngx_conf_t *cf, ngx_str_t *name,
    ssize_t size, size_t sh_size, ngx_uint_t version, const char *what,
    ngx_dr_shm_init_pt init);
/* a "name=time" argument of a zone's directive */
typedef struct {
    const char          *name;         /* "ttl=", ...; NULL ends a list */
    time_t              *value;
    time_t               min;          /* in seconds */
    const char          *help;         /* of the list's first: for errors */
} ngx_dr_conf_time_t;


ngx_int_t ngx_dr_conf_time(ngx_str_t *arg, size_t skip, time_t *t);
ngx_int_t ngx_dr_shm_zone_args(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *name, ssize_t *size, ngx_dr_conf_time_t *times);
ngx_int_t ngx_dr_shm_zone_size(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *arg, ngx_str_t *name, ssize_t *size);


#endif /* _NGX_DR_SHM_H_INCLUDED_ */


/*
 * Domain Runner: the response cache of the API, in shared memory.
 *
 * One zone serves every worker.  Entries are found through an rbtree keyed
 * by a hash of the canonical request (path and validated parameters) and
 * kept in LRU order; when the zone is full the least recently used entries
 * go.  Publishing new scores bumps a generation number, which makes every
 * older entry stale at once without walking the tree.  A stale entry is
 * still served, with its Age, when the database cannot answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>

#include "ngx_dr_module.h"
#include "ngx_dr_shm.h"


/* bumped whenever the layout of the zone changes */
#define NGX_DR_CACHE_VERSION  1

/* entries evicted at most to make room for one new entry */
#define NGX_DR_CACHE_EVICT    16


typedef struct {
    ngx_dr_shm_node_t    sh;           /* rbtree, LRU and the key */
    time_t               stored;
    ngx_uint_t           generation;
    u_char               etag[NGX_DR_CACHE_ETAG_LEN];
    uint32_t             body_len;
    u_char               data[1];      /* the key, then the body */
} ngx_dr_cache_node_t;


typedef struct {
    ngx_dr_shm_head_t    head;
    ngx_uint_t           generation;

    /* read by the metrics */
    ngx_atomic_t         hits;
    ngx_atomic_t         misses;
    ngx_atomic_t         evictions;
    ngx_atomic_t         entries;
} ngx_dr_cache_sh_t;

#define ngx_dr_cache_sh(ctx)  ((ngx_dr_cache_sh_t *) (ctx)->sh)


static void ngx_dr_cache_delete_locked(ngx_dr_shm_ctx_t *ctx,
    ngx_dr_cache_node_t *cn);
static ngx_uint_t ngx_dr_cache_evict_locked(ngx_dr_shm_ctx_t *ctx,
    ngx_uint_t n);


/* dr_cache zone=name:size [ttl=time] [stale=time] */

char *
ngx_dr_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_cache_conf_t  *ccf;

    ssize_t              size;
    ngx_str_t            name;
    ngx_dr_conf_time_t   times[3];

    ccf = (ngx_dr_cache_conf_t *) ((char *) conf + cmd->offset);

    if (ccf->shm_zone) {
        return "is duplicate";
    }

    times[0].name = "ttl=";
    times[0].value = &ccf->ttl;
    times[0].min = 1;
    times[0].help = "ttl=time and stale=time";
    times[1].name = "stale=";
    times[1].value = &ccf->stale;
    times[1].min = 0;
    times[2].name = NULL;

    if (ngx_dr_shm_zone_args(cf, cmd, &name, &size, times) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ccf->ttl == 0) {
        ccf->ttl = 60;
    }

    if (ccf->stale == (time_t) NGX_CONF_UNSET) {
        ccf->stale = 3600;
    }

    ccf->shm_zone = ngx_dr_shm_add(cf, &name, size,
                                   sizeof(ngx_dr_cache_sh_t),
                                   NGX_DR_CACHE_VERSION, "dr_cache", NULL);
    if (ccf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Copies the entry for key, fresh or stale, into pool.  A stale entry is
 * one past its ttl or from before the last invalidation; entries past
 * ttl + stale are not returned at all.
 */

ngx_int_t
ngx_dr_cache_get(ngx_dr_cache_conf_t *ccf, ngx_str_t *key, ngx_pool_t *pool,
    ngx_dr_cache_entry_t *entry)
{
    time_t                age;
    ngx_int_t             rc;
    ngx_dr_shm_ctx_t   *ctx;
    ngx_dr_cache_node_t  *cn;

    ctx = ccf->shm_zone->data;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    entry->generation = ngx_dr_cache_sh(ctx)->generation;

    cn = (ngx_dr_cache_node_t *) ngx_dr_shm_lookup_locked(&ctx->sh->rbtree,
             key, ngx_crc32_short(key->data, key->len));
    if (cn == NULL) {
        goto done;
    }

    age = ngx_time() - cn->stored;

    if (age > ccf->ttl + ccf->stale) {
        ngx_dr_cache_delete_locked(ctx, cn);
        goto done;
    }

    entry->body.data = ngx_pnalloc(pool, cn->body_len);
    if (entry->body.data == NULL) {
        goto done;
    }

    entry->body.len = cn->body_len;
    ngx_memcpy(entry->body.data, cn->data + cn->sh.key_len, cn->body_len);
    ngx_memcpy(entry->etag, cn->etag, NGX_DR_CACHE_ETAG_LEN);
    entry->stored = cn->stored;
    entry->fresh = (age < ccf->ttl
                    && cn->generation == ngx_dr_cache_sh(ctx)->generation);

    ngx_queue_remove(&cn->sh.queue);
    ngx_queue_insert_head(&ctx->sh->lru, &cn->sh.queue);

    rc = NGX_OK;

done:

    if (rc == NGX_OK && entry->fresh) {
        (void) ngx_atomic_fetch_add(&ngx_dr_cache_sh(ctx)->hits, 1);

    } else {
        (void) ngx_atomic_fetch_add(&ngx_dr_cache_sh(ctx)->misses, 1);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


void
ngx_dr_cache_put(ngx_dr_cache_conf_t *ccf, ngx_str_t *key,
    ngx_dr_cache_entry_t *entry, ngx_log_t *log)
{
    size_t                size;
    uint32_t              hash;
    ngx_uint_t            tries;
    ngx_dr_shm_ctx_t   *ctx;
    ngx_dr_cache_node_t  *cn, *old;

    ctx = ccf->shm_zone->data;
    hash = ngx_crc32_short(key->data, key->len);
    size = offsetof(ngx_dr_cache_node_t, data) + key->len + entry->body.len;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (tries = 0; tries < 4; tries++) {
        cn = ngx_slab_alloc_locked(ctx->shpool, size);
        if (cn) {
            break;
        }

        if (ngx_dr_cache_evict_locked(ctx, NGX_DR_CACHE_EVICT) == 0) {
            break;
        }
    }

    /* the old answer goes only once the new one has its place */

    old = (ngx_dr_cache_node_t *) ngx_dr_shm_lookup_locked(&ctx->sh->rbtree,
                                                            key, hash);
    if (old && cn) {
        ngx_dr_cache_delete_locked(ctx, old);
    }

    if (cn == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "dr_cache zone \"%V\" cannot hold an answer of "
                      "%uz bytes", &ccf->shm_zone->shm.name,
                      entry->body.len);
        return;
    }

    cn->sh.node.key = hash;
    cn->sh.key = cn->data;
    cn->sh.key_len = key->len;
    cn->stored = ngx_time();
    cn->generation = entry->generation;
    cn->body_len = entry->body.len;
    ngx_memcpy(cn->etag, entry->etag, NGX_DR_CACHE_ETAG_LEN);
    ngx_memcpy(cn->data, key->data, key->len);
    ngx_memcpy(cn->data + key->len, entry->body.data, entry->body.len);

    ngx_rbtree_insert(&ctx->sh->rbtree, &cn->sh.node);
    ngx_queue_insert_head(&ctx->sh->lru, &cn->sh.queue);
    (void) ngx_atomic_fetch_add(&ngx_dr_cache_sh(ctx)->entries, 1);

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


void
ngx_dr_cache_invalidate(ngx_dr_cache_conf_t *ccf)
{
    ngx_dr_shm_ctx_t  *ctx;

    if (ccf->shm_zone == NULL) {
        return;
    }

    ctx = ccf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    ngx_dr_cache_sh(ctx)->generation++;
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


ngx_int_t
ngx_dr_cache_stats(ngx_dr_cache_conf_t *ccf, ngx_atomic_uint_t *hits,
    ngx_atomic_uint_t *misses, ngx_atomic_uint_t *evictions,
    ngx_atomic_uint_t *entries)
{
    ngx_dr_shm_ctx_t  *ctx;

    if (ccf->shm_zone == NULL) {
        return NGX_DECLINED;
    }

    ctx = ccf->shm_zone->data;

    *hits = ngx_dr_cache_sh(ctx)->hits;
    *misses = ngx_dr_cache_sh(ctx)->misses;
    *evictions = ngx_dr_cache_sh(ctx)->evictions;
    *entries = ngx_dr_cache_sh(ctx)->entries;

    return NGX_OK;
}


/* a strong validator: the first 64 bits of the body's MD5, quoted */

void
ngx_dr_cache_etag(ngx_str_t *body, u_char *etag)
{
    ngx_md5_t  md5;
    u_char     digest[16];

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, body->data, body->len);
    ngx_md5_final(digest, &md5);

    etag[0] = '"';
    (void) ngx_hex_dump(etag + 1, digest, 8);
    etag[NGX_DR_CACHE_ETAG_LEN - 1] = '"';
}


static void
ngx_dr_cache_delete_locked(ngx_dr_shm_ctx_t *ctx, ngx_dr_cache_node_t *cn)
{
    ngx_queue_remove(&cn->sh.queue);
    ngx_rbtree_delete(&ctx->sh->rbtree, &cn->sh.node);
    ngx_slab_free_locked(ctx->shpool, cn);
    (void) ngx_atomic_fetch_add(&ngx_dr_cache_sh(ctx)->entries, -1);
}


static ngx_uint_t
ngx_dr_cache_evict_locked(ngx_dr_shm_ctx_t *ctx, ngx_uint_t n)
{
    ngx_uint_t            evicted;
    ngx_queue_t          *q;
    ngx_dr_cache_node_t  *cn;

    for (evicted = 0; evicted < n; evicted++) {
        if (ngx_queue_empty(&ctx->sh->lru)) {
            break;
        }

        q = ngx_queue_last(&ctx->sh->lru);
        cn = ngx_queue_data(q, ngx_dr_cache_node_t, sh.queue);
        ngx_dr_cache_delete_locked(ctx, cn);
    }

    (void) ngx_atomic_fetch_add(&ngx_dr_cache_sh(ctx)->evictions, evicted);

    return evicted;
}

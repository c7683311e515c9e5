
/*
 * Domain Runner: the key store.
 *
 * A key is looked up by its public prefix on the primary (a lagging
 * replica could bring a revoked key back) and kept in a shared-memory
 * cache for every worker.  Unknown prefixes are kept too, for a shorter
 * time and in a bounded space of their own, so that a flood of made-up
 * keys never pushes a real key out.  The look-ups of one prefix under way
 * in a worker are one query, whoever asks.  A revocation, pushed by
 * PostgreSQL (NOTIFY) to the listener of each node, drops the cached key
 * at once and bumps a generation: an answer read before it is asked for
 * again instead of being kept.  A rotated key is cached with the hash of
 * its previous secret and the end of its grace, and a key of an account
 * with the account's generation, which its access tokens must name.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_shm.h"
#include "ngx_dr_keys.h"


#define NGX_DR_KEYS_VERSION    3
#define NGX_DR_KEYS_NODE_SIZE  192     /* a cached key, with its head */
#define NGX_DR_KEYS_TRIES      3       /* a look-up overtaken by changes */


typedef struct {
    ngx_dr_shm_node_t    sh;
    ngx_dr_key_t         key;
    u_char               data[NGX_DR_KEY_PREFIX_LEN];
} ngx_dr_keys_node_t;


/* known keys in the head's LRU, unknown prefixes in a bounded one */
typedef struct {
    ngx_dr_shm_head_t    head;
    ngx_queue_t          unknown;
    ngx_uint_t           nunknown;
    ngx_atomic_t         generation;   /* bumped by every change */
} ngx_dr_keys_sh_t;

#define ngx_dr_keys_sh(ctx)  ((ngx_dr_keys_sh_t *) (ctx)->sh)


/* a look-up under way in this worker, and the requests waiting for it */
typedef struct {
    ngx_queue_t          queue;
    u_char               prefix[NGX_DR_KEY_PREFIX_LEN + 1];
    ngx_atomic_uint_t    generation;
    ngx_uint_t           tries;
    ngx_queue_t          waiters;
    ngx_dr_main_conf_t  *dmcf;
} ngx_dr_keys_lookup_t;


typedef struct {
    ngx_queue_t              queue;
    ngx_http_request_t      *request;
    ngx_dr_keys_found_pt     found;
    ngx_dr_keys_lookup_t    *lookup;   /* NULL: answered */
} ngx_dr_keys_waiter_t;


static void ngx_dr_keys_init_sh(ngx_dr_shm_head_t *head);
static ngx_int_t ngx_dr_keys_send(ngx_dr_keys_lookup_t *lk);
static void ngx_dr_keys_loaded(ngx_dr_pg_query_t *q);
static void ngx_dr_keys_read(PGresult *res, ngx_dr_key_t *key);
static ngx_int_t ngx_dr_keys_unhex(u_char *hex, u_char *out, size_t n);
static void ngx_dr_keys_store(ngx_dr_main_conf_t *dmcf,
    ngx_dr_keys_lookup_t *lk, ngx_dr_key_t *key);
static ngx_dr_keys_node_t *ngx_dr_keys_node_locked(ngx_dr_shm_ctx_t *ctx,
    ngx_dr_main_conf_t *dmcf, ngx_uint_t known);
static void ngx_dr_keys_answer(ngx_dr_keys_lookup_t *lk, ngx_dr_key_t *key,
    ngx_int_t rc);
static void ngx_dr_keys_waiter_cleanup(void *data);
static void ngx_dr_keys_changed(ngx_str_t *channel, ngx_str_t *payload,
    void *data);
static void ngx_dr_keys_free_locked(ngx_dr_shm_ctx_t *ctx,
    ngx_dr_keys_node_t *kn);


static const char  ngx_dr_keys_sql[] =
    "SELECT k.id, encode(k.secret_hash, 'hex'), k.tier,"
    " coalesce(extract(epoch FROM k.expires_at)::int8, 0),"
    " k.revoked_at IS NOT NULL,"
    /*
     * what the key used today: the flushed usage, or what the nodes of
     * a cluster last told each other, whichever knows more
     */
    " greatest("
    "  (SELECT u.requests FROM usage_daily u"
    "   WHERE u.key_id = k.id AND u.day = (now() AT TIME ZONE 'UTC')::date),"
    "  (SELECT sum(l.daily) FROM limit_consumption l"
    "   WHERE l.bucket LIKE 't:%:k:' || k.id"
    "    AND l.day = (now() AT TIME ZONE 'UTC')::date),"
    "  0), k.name,"
    /* a rotated key's old secret, while its grace lasts */
    " CASE WHEN k.previous_until > now()"
    "  THEN encode(k.previous_hash, 'hex') END,"
    " coalesce(extract(epoch FROM k.previous_until)::int8, 0),"
    " coalesce(k.account_id, 0), coalesce(a.generation, 0) "
    "FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id"
    " WHERE k.prefix = $1";


/* the look-ups under way in this worker */
static ngx_queue_t  ngx_dr_keys_lookups;


/* dr_auth_cache zone=name:size [ttl=time] [negative_ttl=time] */

char *
ngx_dr_keys_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_main_conf_t  *dmcf = conf;

    ssize_t              size;
    ngx_str_t            name;
    ngx_dr_conf_time_t   times[3];

    if (dmcf->key_zone) {
        return "is duplicate";
    }

    times[0].name = "ttl=";
    times[0].value = &dmcf->key_ttl;
    times[0].min = 1;
    times[0].help = "ttl=time and negative_ttl=time";
    times[1].name = "negative_ttl=";
    times[1].value = &dmcf->key_negative_ttl;
    times[1].min = 0;
    times[2].name = NULL;

    if (ngx_dr_shm_zone_args(cf, cmd, &name, &size, times) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    dmcf->key_zone = ngx_dr_shm_add(cf, &name, size,
                                    sizeof(ngx_dr_keys_sh_t),
                                    NGX_DR_KEYS_VERSION, "dr_auth_cache",
                                    ngx_dr_keys_init_sh);
    if (dmcf->key_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    /* unknown prefixes may fill a quarter of what fits, no more */
    dmcf->key_unknown_max = ngx_max((size_t) size
                                    / (4 * NGX_DR_KEYS_NODE_SIZE), 16);

    return NGX_CONF_OK;
}


static void
ngx_dr_keys_init_sh(ngx_dr_shm_head_t *head)
{
    ngx_queue_init(&((ngx_dr_keys_sh_t *) head)->unknown);
}


ngx_int_t
ngx_dr_keys_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_main_conf_t  *dmcf;

    ngx_queue_init(&ngx_dr_keys_lookups);

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || dmcf->key_zone == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    return ngx_dr_pg_listen("dr_keys", ngx_dr_keys_changed, dmcf);
}


/* the cached key of a prefix, while it is fresh: NGX_OK or NGX_DECLINED */

ngx_int_t
ngx_dr_keys_cached(ngx_dr_main_conf_t *dmcf, u_char *prefix,
    ngx_dr_key_t *key)
{
    time_t               ttl;
    ngx_str_t            s;
    ngx_dr_shm_ctx_t    *ctx;
    ngx_dr_keys_sh_t    *sh;
    ngx_dr_keys_node_t  *kn;

    if (dmcf->key_zone == NULL) {
        return NGX_DECLINED;
    }

    ctx = dmcf->key_zone->data;
    sh = ngx_dr_keys_sh(ctx);
    s.data = prefix;
    s.len = NGX_DR_KEY_PREFIX_LEN;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    kn = (ngx_dr_keys_node_t *)
         ngx_dr_shm_lookup_locked(&sh->head.rbtree, &s,
                                  ngx_crc32_short(s.data, s.len));

    if (kn) {
        ttl = kn->key.key_id ? dmcf->key_ttl : dmcf->key_negative_ttl;

        if (ngx_time() - kn->key.cached < ttl) {
            ngx_queue_remove(&kn->sh.queue);
            ngx_queue_insert_head(kn->key.key_id ? &sh->head.lru
                                                 : &sh->unknown,
                                  &kn->sh.queue);
            *key = kn->key;
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_OK;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_DECLINED;
}


/*
 * Looks the prefix up for r: found() is called with the outcome, once,
 * unless r goes away first.  A look-up of the same prefix already under
 * way in this worker is joined, not sent again.
 */

ngx_int_t
ngx_dr_keys_lookup(ngx_http_request_t *r, u_char *prefix,
    ngx_dr_keys_found_pt found)
{
    ngx_queue_t           *q;
    ngx_pool_cleanup_t    *cln;
    ngx_dr_keys_lookup_t  *lk;
    ngx_dr_keys_waiter_t  *w;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_dr_keys_waiter_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    w = cln->data;
    w->request = r;
    w->found = found;
    w->lookup = NULL;
    cln->handler = ngx_dr_keys_waiter_cleanup;

    for (q = ngx_queue_head(&ngx_dr_keys_lookups);
         q != ngx_queue_sentinel(&ngx_dr_keys_lookups);
         q = ngx_queue_next(q))
    {
        lk = ngx_queue_data(q, ngx_dr_keys_lookup_t, queue);

        if (ngx_memcmp(lk->prefix, prefix, NGX_DR_KEY_PREFIX_LEN) == 0) {
            w->lookup = lk;
            ngx_queue_insert_tail(&lk->waiters, &w->queue);
            return NGX_AGAIN;
        }
    }

    lk = ngx_alloc(sizeof(ngx_dr_keys_lookup_t), r->connection->log);
    if (lk == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(lk->prefix, prefix, NGX_DR_KEY_PREFIX_LEN);
    lk->prefix[NGX_DR_KEY_PREFIX_LEN] = '\0';
    lk->tries = 0;
    lk->dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    ngx_queue_init(&lk->waiters);

    if (ngx_dr_keys_send(lk) != NGX_OK) {
        ngx_free(lk);
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&ngx_dr_keys_lookups, &lk->queue);

    w->lookup = lk;
    ngx_queue_insert_tail(&lk->waiters, &w->queue);

    return NGX_AGAIN;
}


/* the query of a look-up, in a pool of its own: no request owns it */

static ngx_int_t
ngx_dr_keys_send(ngx_dr_keys_lookup_t *lk)
{
    ngx_pool_t        *pool;
    const char        *params[1];
    ngx_dr_shm_ctx_t  *ctx;

    lk->generation = 0;

    if (lk->dmcf->key_zone) {
        ctx = lk->dmcf->key_zone->data;
        lk->generation = ngx_dr_keys_sh(ctx)->generation;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    params[0] = (const char *) lk->prefix;

    if (ngx_dr_pg_query(pool, ngx_cycle->log, NGX_DR_PG_PREPARE, 0,
                        ngx_dr_keys_sql, 1, params, ngx_dr_keys_loaded, lk)
        == NULL)
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    lk->tries++;

    return NGX_OK;
}


static void
ngx_dr_keys_loaded(ngx_dr_pg_query_t *q)
{
    ngx_dr_key_t           key;
    ngx_dr_shm_ctx_t      *ctx;
    ngx_dr_keys_lookup_t  *lk;

    lk = q->data;

    if (q->rc != NGX_DR_PG_OK) {
        ngx_destroy_pool(q->pool);
        ngx_dr_keys_answer(lk, NULL, NGX_ERROR);
        return;
    }

    ngx_dr_keys_read(q->res, &key);
    ngx_destroy_pool(q->pool);

    if (key.key_id && lk->dmcf->key_zone) {
        ctx = lk->dmcf->key_zone->data;

        /*
         * a key changed (a revocation) while this answer was on its way:
         * it may be the one, so it is asked for again
         */

        if (ngx_dr_keys_sh(ctx)->generation != lk->generation
            && lk->tries < NGX_DR_KEYS_TRIES
            && ngx_dr_keys_send(lk) == NGX_OK)
        {
            return;
        }
    }

    ngx_dr_keys_store(lk->dmcf, lk, &key);
    ngx_dr_keys_answer(lk, &key, NGX_OK);
}


static void
ngx_dr_keys_read(PGresult *res, ngx_dr_key_t *key)
{
    u_char  *p;
    size_t   len;

    ngx_memzero(key, sizeof(ngx_dr_key_t));
    key->cached = ngx_time();
    key->day = (uint32_t) (ngx_time() / 86400);

    if (PQntuples(res) != 1) {
        return;
    }

    key->key_id = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                            PQgetlength(res, 0, 0));

    p = (u_char *) PQgetvalue(res, 0, 1);

    if (PQgetlength(res, 0, 1) != 64
        || ngx_dr_keys_unhex(p, key->hash, 32) != NGX_OK)
    {
        /* no hash matches: the key is refused as unknown */
        key->key_id = 0;
        return;
    }

    len = ngx_min((size_t) PQgetlength(res, 0, 2), sizeof(key->tier));
    ngx_memcpy(key->tier, PQgetvalue(res, 0, 2), len);
    key->tier_len = (uint8_t) len;

    key->expires = (time_t) ngx_atoof((u_char *) PQgetvalue(res, 0, 3),
                                      PQgetlength(res, 0, 3));
    key->revoked = (PQgetvalue(res, 0, 4)[0] == 't');
    key->used_today = ngx_atoof((u_char *) PQgetvalue(res, 0, 5),
                                PQgetlength(res, 0, 5));

    len = ngx_min((size_t) PQgetlength(res, 0, 6), sizeof(key->name));
    ngx_memcpy(key->name, PQgetvalue(res, 0, 6), len);
    key->name_len = (uint8_t) len;

    if (PQgetlength(res, 0, 7) == 64
        && ngx_dr_keys_unhex((u_char *) PQgetvalue(res, 0, 7),
                             key->previous, 32)
           == NGX_OK)
    {
        key->previous_until = (time_t) ngx_atoof(
                                  (u_char *) PQgetvalue(res, 0, 8),
                                  PQgetlength(res, 0, 8));
    }

    key->account_id = ngx_atoof((u_char *) PQgetvalue(res, 0, 9),
                                PQgetlength(res, 0, 9));
    key->generation = (uint32_t) ngx_atoi((u_char *) PQgetvalue(res, 0, 10),
                                          PQgetlength(res, 0, 10));
}


static ngx_int_t
ngx_dr_keys_unhex(u_char *hex, u_char *out, size_t n)
{
    size_t     i;
    ngx_int_t  b;

    for (i = 0; i < n; i++) {
        b = ngx_hextoi(hex + 2 * i, 2);
        if (b == NGX_ERROR) {
            return NGX_ERROR;
        }

        out[i] = (u_char) b;
    }

    return NGX_OK;
}


/* kept for every worker, unless a change overtook the answer */

static void
ngx_dr_keys_store(ngx_dr_main_conf_t *dmcf, ngx_dr_keys_lookup_t *lk,
    ngx_dr_key_t *key)
{
    ngx_str_t            s;
    ngx_queue_t         *lru;
    ngx_dr_shm_ctx_t    *ctx;
    ngx_dr_keys_sh_t    *sh;
    ngx_dr_keys_node_t  *kn;

    if (dmcf->key_zone == NULL) {
        return;
    }

    ctx = dmcf->key_zone->data;
    sh = ngx_dr_keys_sh(ctx);
    s.data = lk->prefix;
    s.len = NGX_DR_KEY_PREFIX_LEN;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (key->key_id && sh->generation != lk->generation) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return;
    }

    kn = (ngx_dr_keys_node_t *)
         ngx_dr_shm_lookup_locked(&sh->head.rbtree, &s,
                                  ngx_crc32_short(s.data, s.len));
    if (kn) {
        ngx_dr_keys_free_locked(ctx, kn);
    }

    kn = ngx_dr_keys_node_locked(ctx, dmcf, key->key_id != 0);

    if (kn) {
        kn->key = *key;
        ngx_memcpy(kn->data, lk->prefix, NGX_DR_KEY_PREFIX_LEN);
        kn->sh.key = kn->data;
        kn->sh.key_len = NGX_DR_KEY_PREFIX_LEN;
        kn->sh.node.key = ngx_crc32_short(s.data, s.len);
        ngx_rbtree_insert(&sh->head.rbtree, &kn->sh.node);

        lru = key->key_id ? &sh->head.lru : &sh->unknown;
        ngx_queue_insert_head(lru, &kn->sh.queue);

        if (key->key_id == 0) {
            sh->nunknown++;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * Room for a known key: free memory, else an unknown prefix, else the
 * least recently used key.  Room for an unknown prefix: only within its
 * bound and only at the expense of another unknown one.  NULL: not kept.
 */

static ngx_dr_keys_node_t *
ngx_dr_keys_node_locked(ngx_dr_shm_ctx_t *ctx, ngx_dr_main_conf_t *dmcf,
    ngx_uint_t known)
{
    ngx_queue_t         *lru;
    ngx_dr_keys_sh_t    *sh;
    ngx_dr_keys_node_t  *kn;

    sh = ngx_dr_keys_sh(ctx);

    if (known || sh->nunknown < dmcf->key_unknown_max) {
        kn = ngx_slab_alloc_locked(ctx->shpool, sizeof(ngx_dr_keys_node_t));
        if (kn) {
            return kn;
        }
    }

    if (!ngx_queue_empty(&sh->unknown)) {
        lru = &sh->unknown;

    } else if (known && !ngx_queue_empty(&sh->head.lru)) {
        lru = &sh->head.lru;

    } else {
        return NULL;
    }

    kn = ngx_queue_data(ngx_queue_last(lru), ngx_dr_keys_node_t, sh.queue);
    ngx_dr_keys_free_locked(ctx, kn);

    return ngx_slab_alloc_locked(ctx->shpool, sizeof(ngx_dr_keys_node_t));
}


/* every request still waiting for the look-up gets its outcome */

static void
ngx_dr_keys_answer(ngx_dr_keys_lookup_t *lk, ngx_dr_key_t *key,
    ngx_int_t rc)
{
    ngx_queue_t           *q;
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_dr_keys_waiter_t  *w;

    ngx_queue_remove(&lk->queue);

    while (!ngx_queue_empty(&lk->waiters)) {
        q = ngx_queue_head(&lk->waiters);

        /*
         * always false: tells clang's analyzer that the head follows the
         * sentinel, which it cannot know (see ngx_dr_pg_waiting_first)
         */
        if (ngx_queue_prev(q) != &lk->waiters) {
            break;
        }

        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_dr_keys_waiter_t, queue);
        w->lookup = NULL;
        r = w->request;
        c = r->connection;

        w->found(r, key, rc);
        ngx_http_run_posted_requests(c);
    }

    ngx_free(lk);
}


/* a request that went away waits no more */

static void
ngx_dr_keys_waiter_cleanup(void *data)
{
    ngx_dr_keys_waiter_t  *w = data;

    if (w->lookup) {
        ngx_queue_remove(&w->queue);
        w->lookup = NULL;
    }
}


/* a key changed (revoked, rotated): no worker of this node keeps it */

static void
ngx_dr_keys_changed(ngx_str_t *channel, ngx_str_t *payload, void *data)
{
    ngx_dr_main_conf_t  *dmcf = data;

    ngx_queue_t         *q;
    ngx_dr_shm_ctx_t    *ctx;
    ngx_dr_keys_sh_t    *sh;
    ngx_dr_keys_node_t  *kn;

    ctx = dmcf->key_zone->data;
    sh = ngx_dr_keys_sh(ctx);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    sh->generation++;

    if (channel == NULL || payload == NULL || payload->len == 0) {
        /* (re)connected: whatever changed meanwhile is unknown */

        while (!ngx_queue_empty(&sh->head.lru)) {
            q = ngx_queue_head(&sh->head.lru);
            kn = ngx_queue_data(q, ngx_dr_keys_node_t, sh.queue);
            ngx_dr_keys_free_locked(ctx, kn);
        }

    } else {
        kn = (ngx_dr_keys_node_t *)
             ngx_dr_shm_lookup_locked(&sh->head.rbtree, payload,
                                      ngx_crc32_short(payload->data,
                                                      payload->len));
        if (kn) {
            ngx_dr_keys_free_locked(ctx, kn);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


static void
ngx_dr_keys_free_locked(ngx_dr_shm_ctx_t *ctx, ngx_dr_keys_node_t *kn)
{
    ngx_dr_keys_sh_t  *sh;

    sh = ngx_dr_keys_sh(ctx);

    if (kn->key.key_id == 0) {
        sh->nunknown--;
    }

    ngx_queue_remove(&kn->sh.queue);
    ngx_rbtree_delete(&sh->head.rbtree, &kn->sh.node);
    ngx_slab_free_locked(ctx->shpool, kn);
}

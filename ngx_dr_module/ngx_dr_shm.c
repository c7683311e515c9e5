
/*
 * Domain Runner: entries of shared-memory zones found by a string key.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_shm.h"


void
ngx_dr_shm_insert_value(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;
    ngx_dr_shm_node_t   *n, *t;

    for ( ;; ) {
        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            n = (ngx_dr_shm_node_t *) node;
            t = (ngx_dr_shm_node_t *) temp;

            p = (ngx_memn2cmp(n->key, t->key, n->key_len, t->key_len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


ngx_dr_shm_node_t *
ngx_dr_shm_lookup_locked(ngx_rbtree_t *tree, ngx_str_t *key, uint32_t hash)
{
    ngx_int_t           rc;
    ngx_rbtree_node_t  *node, *sentinel;
    ngx_dr_shm_node_t  *n;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        n = (ngx_dr_shm_node_t *) node;

        rc = ngx_memn2cmp(key->data, n->key, key->len, n->key_len);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Adds the zone of a directive; its shared part (of sh_size bytes, the
 * head first) is made by ngx_dr_shm_init_zone().
 */

ngx_shm_zone_t *
ngx_dr_shm_add(ngx_conf_t *cf, ngx_str_t *name, ssize_t size,
    size_t sh_size, ngx_uint_t version, const char *what,
    ngx_dr_shm_init_pt init)
{
    ngx_shm_zone_t    *zone;
    ngx_dr_shm_ctx_t  *c;

    c = ngx_pcalloc(cf->pool, sizeof(ngx_dr_shm_ctx_t));
    if (c == NULL) {
        return NULL;
    }

    zone = ngx_shared_memory_add(cf, name, size, &ngx_http_dr_module);
    if (zone == NULL) {
        return NULL;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", name);
        return NULL;
    }

    c->size = sh_size;
    c->version = version;
    c->what = what;
    c->init = init;

    zone->init = ngx_dr_shm_init_zone;
    zone->data = c;

    return zone;
}


/* the time of a "name=time" argument, after its prefix of skip bytes */

ngx_int_t
ngx_dr_conf_time(ngx_str_t *arg, size_t skip, time_t *t)
{
    ngx_str_t  s;

    s.data = arg->data + skip;
    s.len = arg->len - skip;

    *t = ngx_parse_time(&s, 1);

    return (*t == (time_t) NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/*
 * The arguments of a zone's directive: "zone=name:size" and the named
 * times it takes (ttl=, stale=, ...), each at least min seconds; an
 * unknown or bad argument or a missing zone is an EMERG that says which.
 */

ngx_int_t
ngx_dr_shm_zone_args(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *name,
    ssize_t *size, ngx_dr_conf_time_t *times)
{
    size_t               len;
    ngx_str_t           *value;
    ngx_uint_t           i;
    ngx_dr_conf_time_t  *t;

    value = cf->args->elts;
    name->len = 0;
    *size = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            if (ngx_dr_shm_zone_size(cf, cmd, &value[i], name, size)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        for (t = times; t->name; t++) {
            len = ngx_strlen(t->name);

            if (value[i].len > len
                && ngx_strncmp(value[i].data, t->name, len) == 0)
            {
                break;
            }
        }

        if (t->name == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" does not know \"%V\": it takes "
                               "zone=name:size and %s", &cmd->name,
                               &value[i], times->help);
            return NGX_ERROR;
        }

        if (ngx_dr_conf_time(&value[i], len, t->value) != NGX_OK
            || *t->value < t->min)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" has an invalid \"%V\": a time of "
                               "at least %Ts is needed", &cmd->name,
                               &value[i], t->min);
            return NGX_ERROR;
        }
    }

    if (name->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs zone=name:size", &cmd->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* "zone=name:size" into name and size, with a precise error */

ngx_int_t
ngx_dr_shm_zone_size(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *arg,
    ngx_str_t *name, ssize_t *size)
{
    u_char     *p;
    ngx_str_t   s;

    name->data = arg->data + 5;
    p = (u_char *) ngx_strlchr(name->data, arg->data + arg->len, ':');

    if (p == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" zone \"%V\" needs a size, as in "
                           "zone=name:10m", &cmd->name, arg);
        return NGX_ERROR;
    }

    name->len = p - name->data;

    s.data = p + 1;
    s.len = arg->data + arg->len - s.data;

    *size = ngx_parse_size(&s);

    if (*size == NGX_ERROR || name->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" has an invalid zone \"%V\"",
                           &cmd->name, arg);
        return NGX_ERROR;
    }

    if (*size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" zone \"%V\" is too small, at least %uz "
                           "bytes are needed", &cmd->name, name,
                           8 * ngx_pagesize);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The init of every such zone, with nginx's three cases: a reload keeps
 * the running zone and its entries; a zone that exists (a binary upgrade)
 * is taken over if its layout is this version's; else it is made new.
 */

ngx_int_t
ngx_dr_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_dr_shm_ctx_t  *octx = data;

    size_t              len;
    ngx_dr_shm_ctx_t   *ctx;
    ngx_dr_shm_head_t  *head;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        head = ctx->shpool->data;
        ctx->sh = head;

        if (head->version != ctx->version) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "%s zone \"%V\" was made by another version of "
                          "the module: restart nginx", ctx->what,
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    head = ngx_slab_calloc(ctx->shpool, ctx->size);
    if (head == NULL) {
        return NGX_ERROR;
    }

    ctx->sh = head;
    ctx->shpool->data = head;

    head->version = ctx->version;
    ngx_rbtree_init(&head->rbtree, &head->sentinel, ngx_dr_shm_insert_value);
    ngx_queue_init(&head->lru);

    if (ctx->init) {
        ctx->init(head);
    }

    len = sizeof(" in  zone \"\"") + ngx_strlen(ctx->what)
          + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in %s zone \"%V\"%Z", ctx->what,
                &shm_zone->shm.name);

    /* a full zone is normal: entries are evicted, no log line */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * Domain Runner: entries of shared-memory zones found by a string key.
 */


#include <ngx_config.h>
#include <ngx_core.h>

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

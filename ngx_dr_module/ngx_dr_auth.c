
/*
 * Domain Runner: API keys and the limits of the request.
 *
 * An access-phase handler: it finds the key (X-API-Key or Authorization:
 * Bearer), checks its form "dr_<prefix>_<secret>", hashes the secret with
 * HMAC-SHA256 under the server's secret and compares it in constant time
 * with the hash stored for the prefix.  Keys are looked up once in
 * PostgreSQL and then kept in a shared-memory cache for every worker,
 * unknown prefixes too; a revocation is pushed by PostgreSQL (NOTIFY) to
 * the listener of each node, which drops the cached key at once.  Then
 * the key's token bucket decides, and a header filter puts the limits on
 * every answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_auth.h"
#include "ngx_dr_keys.h"
#include "ngx_dr_health.h"
#include "ngx_dr_credential.h"


#define NGX_DR_AUTH_NONE       0
#define NGX_DR_AUTH_PENDING    1
#define NGX_DR_AUTH_DONE       2





static ngx_int_t ngx_dr_auth_handler(ngx_http_request_t *r);
static ngx_int_t ngx_dr_auth_subrequest(ngx_http_request_t *r);
static ngx_int_t ngx_dr_auth_anonymous(ngx_http_request_t *r,
    ngx_dr_request_t *req);
static ngx_int_t ngx_dr_auth_hide(ngx_http_request_t *r);
static ngx_int_t ngx_dr_auth_token(ngx_http_request_t *r, ngx_str_t *token);
static ngx_int_t ngx_dr_auth_key(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_str_t *token);
static ngx_int_t ngx_dr_auth_jwt(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_str_t *token);
static ngx_int_t ngx_dr_auth_find(ngx_http_request_t *r,
    ngx_dr_request_t *req);
static ngx_uint_t ngx_dr_auth_open_path(ngx_http_request_t *r);
static ngx_int_t ngx_dr_auth_cached(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_dr_key_t *kn);
static ngx_int_t ngx_dr_auth_wants(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_uint_t daily_seed);
static ngx_int_t ngx_dr_auth_who(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_dr_policy_t *policy, u_char *kind, ngx_str_t *who);
static ngx_int_t ngx_dr_auth_refuse(ngx_http_request_t *r,
    ngx_dr_request_t *req, const char *error, const char *message);
static ngx_int_t ngx_dr_auth_lookups(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_str_t *client);
static void ngx_dr_auth_found(ngx_http_request_t *r, ngx_dr_key_t *key,
    ngx_int_t rc);
static ngx_int_t ngx_dr_auth_limit(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_uint_t daily_seed);
static ngx_int_t ngx_dr_auth_reject(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_uint_t status, const char *error,
    const char *message);
static ngx_int_t ngx_dr_auth_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_dr_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_int_t ngx_dr_auth_hmac_init(ngx_dr_main_conf_t *dmcf);
static ngx_int_t ngx_dr_auth_hmac_key(ngx_dr_secret_t *secret,
    ngx_uint_t slot);
static ngx_int_t ngx_dr_auth_read_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *name, ngx_dr_secret_t *secret);
static void ngx_dr_auth_rehash(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_dr_key_t *kn);
static void ngx_dr_auth_rehashed(ngx_dr_pg_query_t *q);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

/*
 * per worker: the HMAC states after each server secret's padded blocks,
 * the current one's and, while rotating, the previous one's
 */
static struct {
    EVP_MD_CTX      *inner;
    EVP_MD_CTX      *outer;
} ngx_dr_auth_hmac[2];

static EVP_MD_CTX  *ngx_dr_auth_work;


static ngx_str_t  ngx_dr_limit_status_names[] = {
    ngx_null_string,
    ngx_string("passed"),
    ngx_string("rejected"),
    ngx_string("dry_run")
};


static ngx_http_variable_t  ngx_dr_auth_vars[] = {
    { ngx_string("dr_key_id"), NULL, ngx_dr_auth_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("dr_tier"), NULL, ngx_dr_auth_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("dr_limit_status"), NULL, ngx_dr_auth_variable, 2,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("dr_key_name"), NULL, ngx_dr_auth_variable, 3,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("dr_limit_remaining"), NULL, ngx_dr_auth_variable, 4,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("dr_limit_policy"), NULL, ngx_dr_auth_variable, 5,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    ngx_http_null_variable
};




/* configuration */


/*
 * The server secret: read once, when the configuration is, from a file
 * that only its owner may read; nginx -T never shows it.
 */

char *
ngx_dr_auth_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_main_conf_t  *dmcf = conf;

    ngx_str_t  *value, previous;

    if (dmcf->key_secret.value.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_dr_auth_read_secret(cf, cmd, &value[1], &dmcf->key_secret)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "previous=", 9) != 0
        || value[2].len == 9)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes a file and previous=file, not "
                           "\"%V\"", &cmd->name, &value[2]);
        return NGX_CONF_ERROR;
    }

    previous.data = value[2].data + 9;
    previous.len = value[2].len - 9;

    if (ngx_dr_auth_read_secret(cf, cmd, &previous,
                                &dmcf->key_secret_previous)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* dr_jwt_secret_file: the secret the accounts' access tokens are
 * signed with, read as the keys' server secret is */

char *
ngx_dr_auth_jwt_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_main_conf_t  *dmcf = conf;

    ngx_str_t  *value;

    if (dmcf->jwt_secret.value.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_dr_auth_read_secret(cf, cmd, &value[1], &dmcf->jwt_secret)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A server secret: read once, when the configuration is, from a file that
 * only its owner may read; nginx -T never shows it.  Its fingerprint (the
 * first 8 bytes of its SHA-256, in hex) tells keys made under it from
 * others, and says nothing of it.
 */

static ngx_int_t
ngx_dr_auth_read_secret(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *name,
    ngx_dr_secret_t *secret)
{
    ssize_t           n;
    ngx_file_t        file;
    ngx_file_info_t   fi;
    u_char            buf[1024], md[32];

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *name;
    file.log = cf->log;

    file.fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" cannot open \"%V\"", &cmd->name, name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" cannot stat \"%V\"", &cmd->name, name);
        (void) ngx_close_file(file.fd);
        return NGX_ERROR;
    }

    if (fi.st_mode & (S_IRGRP|S_IWGRP|S_IROTH|S_IWOTH)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" may be read or written by "
                           "users other than its owner; make it readable "
                           "by its owner only (chmod 600)", &cmd->name,
                           name);
        (void) ngx_close_file(file.fd);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);
    (void) ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'
                     || buf[n - 1] == ' '))
    {
        n--;
    }

    if (n < 32 || n == (ssize_t) sizeof(buf)) {
        ngx_explicit_memzero(buf, sizeof(buf));
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" must hold from 32 to 1023 "
                           "bytes of secret", &cmd->name, name);
        return NGX_ERROR;
    }

    secret->value.data = ngx_pnalloc(cf->pool, n);
    if (secret->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(secret->value.data, buf, n);
    secret->value.len = n;

    if (EVP_Digest(buf, n, md, NULL, EVP_sha256(), NULL) != 1) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_ERROR;
    }

    ngx_explicit_memzero(buf, sizeof(buf));
    ngx_hex_dump(secret->version, md, 8);
    secret->version[16] = '\0';

    return NGX_OK;
}




ngx_int_t
ngx_dr_auth_init(ngx_conf_t *cf)
{
    if (ngx_dr_http_phase(cf, NGX_HTTP_ACCESS_PHASE, ngx_dr_auth_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * nginx runs no access handler for a subrequest (SSI, mirror,
     * auth_request): one into a protected location is checked here,
     * carrying its main request's decision or making it once for both
     */

    if (ngx_dr_http_phase(cf, NGX_HTTP_PREACCESS_PHASE,
                          ngx_dr_auth_subrequest)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_dr_auth_header_filter;

    return NGX_OK;
}


ngx_int_t
ngx_dr_auth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_dr_auth_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}




/* the access phase */


static ngx_int_t
ngx_dr_auth_subrequest(ngx_http_request_t *r)
{
    if (r == r->main) {
        return NGX_DECLINED;
    }

    return ngx_dr_auth_handler(r);
}



static ngx_int_t
ngx_dr_auth_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_str_t            token;
    ngx_dr_request_t    *req;
    ngx_dr_loc_conf_t   *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    if (dlcf->auth == NGX_DR_AUTH_OFF
        || (dlcf->api && ngx_dr_health_path(&r->uri)))
    {
        return NGX_DECLINED;
    }

    if (dlcf->cors && ngx_dr_http_is_preflight(r)) {
        /*
         * A browser's preflight never carries a key: where cross-origin
         * requests are configured it is answered without one (204 for
         * an allowed origin, 403 for another) and takes no token.  The
         * API answers its own; elsewhere (a proxied location) it is
         * answered here, before the upstream.
         */
        if (dlcf->api) {
            return NGX_DECLINED;
        }

        ngx_http_finalize_request(r, ngx_dr_http_preflight(r));
        return NGX_DONE;
    }

    req = ngx_dr_request(r);
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (req->auth_state == NGX_DR_AUTH_DONE) {
        /*
         * an internal redirect keeps the outcome, but a client let in
         * without a key is not let into a location that needs one
         */
        if (dlcf->auth == NGX_DR_AUTH_REQUIRED && req->key_id == 0
            && req->auth_rc == NGX_OK)
        {
            return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                      "missing_key",
                                      "an API key is needed, in X-API-Key "
                                      "or Authorization: Bearer");
        }

        /* a subrequest carries the decision of its main request */
        if (r != r->main && req->auth_rc == NGX_DONE) {
            return NGX_HTTP_FORBIDDEN;
        }

        return req->auth_rc;
    }

    if (req->auth_state == NGX_DR_AUTH_PENDING) {
        return NGX_AGAIN;
    }


    rc = ngx_dr_auth_token(r, &token);

    if (rc == NGX_ERROR) {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_key",
                                  "two different API keys were sent: use "
                                  "X-API-Key or Authorization, not both");
    }

    if (rc == NGX_OK && dlcf->hide_credentials
        && ngx_dr_auth_hide(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        if (dlcf->auth == NGX_DR_AUTH_REQUIRED
            && !ngx_dr_auth_open_path(r))
        {
            return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                      "missing_key",
                                      "an API key is needed, in X-API-Key "
                                      "or Authorization: Bearer");
        }

        return ngx_dr_auth_anonymous(r, req);
    }

    return ngx_dr_auth_key(r, req, &token);
}


/*
 * dr_auth_hide_credentials: the headers that carried the key (X-API-Key,
 * Authorization: Bearer) are dropped from the request, so that no
 * upstream ever sees a key; another Authorization scheme is the
 * upstream's and stays.  The list is made again: nginx's lists take no
 * removal, and a proxy sends every element of it.
 */

static ngx_int_t
ngx_dr_auth_hide(ngx_http_request_t *r)
{
    ngx_uint_t        i, n, bearer;
    ngx_array_t       kept;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *e;

    static ngx_str_t  api_key = ngx_string("x-api-key");

    bearer = r->headers_in.authorization
             && r->headers_in.authorization->value.len > 7
             && ngx_strncasecmp(r->headers_in.authorization->value.data,
                                (u_char *) "Bearer ", 7) == 0;

    if (ngx_array_init(&kept, r->pool, 16, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if ((h[i].key.len == api_key.len
             && ngx_strncasecmp(h[i].key.data, api_key.data, api_key.len)
                == 0)
            || (bearer && &h[i] == r->headers_in.authorization))
        {
            continue;
        }

        e = ngx_array_push(&kept);
        if (e == NULL) {
            return NGX_ERROR;
        }

        *e = h[i];
    }

    if (ngx_list_init(&r->headers_in.headers, r->pool,
                      ngx_max(kept.nelts, 1), sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    h = kept.elts;
    n = kept.nelts;

    for (i = 0; i < n; i++) {
        e = ngx_list_push(&r->headers_in.headers);
        if (e == NULL) {
            return NGX_ERROR;
        }

        *e = h[i];
    }

    if (bearer) {
        r->headers_in.authorization = NULL;
    }

    return NGX_OK;
}


/*
 * The key's hash under the current secret, stored in the background
 * where its hash under the previous one still is; the change notifies
 * the nodes, whose caches then take the new hash.
 */

static void
ngx_dr_auth_rehash(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_dr_key_t *kn)
{
    u_char              *p;
    ngx_pool_t          *pool;
    const char          *params[4];
    ngx_dr_main_conf_t  *dmcf;
    u_char               hash[32];

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (ngx_dr_auth_hash(dmcf, 0, req->secret.data, req->secret.len, hash)
        != NGX_OK)
    {
        return;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    p = ngx_pnalloc(pool, NGX_INT64_LEN + 1 + 2 * 65 + 17);
    if (p == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    params[0] = (const char *) p;
    p = ngx_sprintf(p, "%L%Z", kn->key_id);
    params[1] = (const char *) p;
    p = ngx_hex_dump(p, kn->hash, 32);
    *p++ = '\0';
    params[2] = (const char *) p;
    p = ngx_hex_dump(p, hash, 32);
    *p++ = '\0';
    params[3] = (const char *) p;
    (void) ngx_cpystrn(p, dmcf->key_secret.version, 17);

    if (ngx_dr_pg_query(pool, ngx_cycle->log, 0, 0,
                        "UPDATE api_keys SET secret_hash = decode($3, 'hex'),"
                        " secret_version = $4"
                        " WHERE id = $1 AND secret_hash = decode($2, 'hex')",
                        4, params, ngx_dr_auth_rehashed, NULL)
        == NULL)
    {
        ngx_destroy_pool(pool);
    }

    ngx_explicit_memzero(hash, sizeof(hash));
}


static void
ngx_dr_auth_rehashed(ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "a key of the previous server secret could not be "
                      "hashed again; it is when next used");
    }

    ngx_destroy_pool(q->pool);
}


/*
 * Registering and signing in need no key: where the API's locations
 * require one, these two are let in as anonymous clients (limited per
 * client address like any).
 */

static ngx_uint_t
ngx_dr_auth_open_path(ngx_http_request_t *r)
{
    ngx_dr_loc_conf_t  *dlcf;

    static ngx_str_t  open[] = {
        ngx_string("/api/auth/register"),
        ngx_string("/api/auth/login"),
    };

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    if (!dlcf->api) {
        return 0;
    }

    return (r->uri.len == open[0].len
            && ngx_strncmp(r->uri.data, open[0].data, open[0].len) == 0)
           || (r->uri.len == open[1].len
               && ngx_strncmp(r->uri.data, open[1].data, open[1].len) == 0);
}


/* anonymous: limited by the client's network */

static ngx_int_t
ngx_dr_auth_anonymous(ngx_http_request_t *r, ngx_dr_request_t *req)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    req->key_id = 0;
    req->tier = ngx_dr_limit_find_tier(&dmcf->limit,
                                       (u_char *) "anonymous", 9);

    if (ngx_dr_limit_client(&dmcf->limit, r->connection, r->pool,
                            &req->key_label)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_auth_limit(r, req, 0);
}


/*
 * The key of the request: NGX_OK with it, NGX_DECLINED with none, and
 * NGX_ERROR when the two headers carry different keys.
 */

static ngx_int_t
ngx_dr_auth_token(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_str_t         api, bearer;
    ngx_uint_t        i, n;
    ngx_table_elt_t  *h[8];

    api.len = 0;
    api.data = NULL;
    bearer.len = 0;
    bearer.data = NULL;

    n = ngx_dr_http_headers_in(r, "X-API-Key", h, 8);

    for (i = 0; i < n; i++) {
        if (h[i]->value.len == 0) {
            /* an empty header is no key at all */
            continue;
        }

        if (api.data && (api.len != h[i]->value.len
                         || ngx_strncmp(api.data, h[i]->value.data,
                                        api.len) != 0))
        {
            return NGX_ERROR;
        }

        api = h[i]->value;
    }

    if (r->headers_in.authorization) {
        bearer = r->headers_in.authorization->value;

        if (bearer.len >= sizeof("Bearer ") - 1
            && ngx_strncasecmp(bearer.data, (u_char *) "Bearer ",
                               sizeof("Bearer ") - 1) == 0)
        {
            bearer.data += sizeof("Bearer ") - 1;
            bearer.len -= sizeof("Bearer ") - 1;

            while (bearer.len && bearer.data[0] == ' ') {
                bearer.data++;
                bearer.len--;
            }

        } else {
            /* another scheme (Basic, ...) is the upstream's, not a key */
            bearer.data = NULL;
            bearer.len = 0;
        }
    }

    if (api.data && bearer.data
        && (api.len != bearer.len
            || ngx_strncmp(api.data, bearer.data, api.len) != 0))
    {
        return NGX_ERROR;
    }

    if (api.data) {
        *token = api;
        return NGX_OK;
    }

    if (bearer.data) {
        *token = bearer;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_dr_auth_key(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_str_t *token)
{
    u_char               *p;
    ngx_uint_t            i;
    ngx_dr_main_conf_t   *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    p = token->data;

    if (ngx_strlchr(p, p + token->len, '.')) {
        /* no key has a dot: an account's access token */
        return ngx_dr_auth_jwt(r, req, token);
    }

    /* the form first: no hashing, no look-up for garbage */

    if (token->len != NGX_DR_KEY_LEN
        || ngx_strncmp(p, "dr_", 3) != 0
        || p[3 + NGX_DR_KEY_PREFIX_LEN] != '_')
    {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_key",
                                  "the API key is malformed");
    }

    for (i = 3; i < 3 + NGX_DR_KEY_PREFIX_LEN; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')))
        {
            return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                      "invalid_key",
                                      "the API key is malformed");
        }
    }

    for (i = 4 + NGX_DR_KEY_PREFIX_LEN; i < NGX_DR_KEY_LEN; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9')))
        {
            return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                      "invalid_key",
                                      "the API key is malformed");
        }
    }

    ngx_memcpy(req->prefix, p + 3, NGX_DR_KEY_PREFIX_LEN);

    req->secret.data = p + 4 + NGX_DR_KEY_PREFIX_LEN;
    req->secret.len = NGX_DR_KEY_SECRET_LEN;

    if (ngx_dr_auth_hash(dmcf, 0, p + 4 + NGX_DR_KEY_PREFIX_LEN,
                         NGX_DR_KEY_SECRET_LEN, req->hash)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_auth_find(r, req);
}


/*
 * An account's access token (a JWT, HS256): its signature and expiry
 * checked, it acts as the key it names, while the account's generation
 * (bumped by a password change) is the one it was issued under.
 */

static ngx_int_t
ngx_dr_auth_jwt(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_str_t *token)
{
    ngx_int_t             rc;
    ngx_dr_main_conf_t   *dmcf;
    ngx_dr_jwt_claims_t   claims;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (dmcf->jwt_secret.value.len == 0) {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_token",
                                  "access tokens are not accepted here: "
                                  "use an API key");
    }

    rc = ngx_dr_jwt_decode(token->data, token->len,
                           dmcf->jwt_secret.value.data,
                           dmcf->jwt_secret.value.len, ngx_time(), &claims);

    if (rc == NGX_DR_JWT_EXPIRED) {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "expired_token",
                                  "the access token has expired: log in "
                                  "again");
    }

    if (rc != NGX_DR_JWT_OK
        || ngx_strlen(claims.kp) != NGX_DR_KEY_PREFIX_LEN)
    {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_token",
                                  "the access token is not valid");
    }

    ngx_memcpy(req->prefix, claims.kp, NGX_DR_KEY_PREFIX_LEN);
    req->jwt = 1;
    req->account_id = claims.sub;
    req->jwt_gen = claims.gen;

    return ngx_dr_auth_find(r, req);
}


/* the key of req->prefix, from the cache or looked up */

static ngx_int_t
ngx_dr_auth_find(ngx_http_request_t *r, ngx_dr_request_t *req)
{
    ngx_int_t             rc;
    ngx_str_t             client;
    ngx_dr_key_t          key;
    ngx_dr_main_conf_t   *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (ngx_dr_keys_cached(dmcf, req->prefix, &key) == NGX_OK) {
        return ngx_dr_auth_cached(r, req, &key);
    }

    /*
     * Not cached: a look-up.  Each costs a token of its client's own
     * bucket first, so that a flood of made-up keys is refused here
     * instead of becoming queries, while known keys (cached) pass.
     */

    if (ngx_dr_limit_client(&dmcf->limit, r->connection, r->pool, &client)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_dr_auth_lookups(r, req, &client);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_dr_keys_lookup(r, req->prefix, ngx_dr_auth_found);
    if (rc != NGX_AGAIN) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    req->auth_state = NGX_DR_AUTH_PENDING;

    if (!r->discard_body && !r->reading_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    return NGX_AGAIN;
}


/* a token of the client's look-up bucket, or its refusal (sent) */

static ngx_int_t
ngx_dr_auth_lookups(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_str_t *client)
{
    u_char                 *p;
    ngx_dr_tier_t          *tier;
    ngx_dr_loc_conf_t      *dlcf;
    ngx_dr_main_conf_t     *dmcf;
    ngx_dr_limit_want_t    *w;
    ngx_dr_limit_result_t   res;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (dmcf->limit.shm_zone == NULL) {
        return NGX_OK;
    }

    tier = ngx_dr_limit_find_tier(&dmcf->limit, (u_char *) "key_lookup",
                                  sizeof("key_lookup") - 1);

    w = ngx_pcalloc(r->pool, sizeof(ngx_dr_limit_want_t));
    p = ngx_pnalloc(r->pool, sizeof("t:key_lookup:a:") - 1 + client->len);
    if (w == NULL || p == NULL || tier == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w->name = tier->name;
    w->tier = tier;
    w->cost = 1;
    w->key.data = p;
    w->key.len = ngx_sprintf(p, "t:key_lookup:a:%V", client) - p;

    if (ngx_dr_limit_take(&dmcf->limit, w, 1, &res) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (res.passed) {
        return NGX_OK;
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    ngx_log_error(dlcf->limit_log_level, r->connection->log, 0,
                  "client %V looks up too many unknown API keys: refused "
                  "without a query", client);

    req->tier = tier;
    req->limit = res;
    req->wants = w;
    req->nwants = 1;
    req->limited = 1;

    return ngx_dr_auth_refuse(r, req, "too_many_key_lookups",
                              "too many API keys tried that are not known "
                              "here: slow down");
}


/* the outcome of the look-up: the access phase goes on */

static void
ngx_dr_auth_found(ngx_http_request_t *r, ngx_dr_key_t *key, ngx_int_t rc)
{
    ngx_dr_request_t   *req;
    ngx_dr_loc_conf_t  *dlcf;

    req = ngx_dr_request(r);
    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    req->auth_state = NGX_DR_AUTH_NONE;
    r->read_event_handler = ngx_http_block_reading;

    if (rc == NGX_OK) {
        rc = ngx_dr_auth_cached(r, req, key);

    } else if (dlcf->auth_fail == NGX_DR_AUTH_FAIL_OPEN) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "the API key cannot be checked: the database is "
                      "unavailable; let through as anonymous "
                      "(dr_auth_fail open)");
        rc = ngx_dr_auth_anonymous(r, req);

    } else {
        rc = ngx_dr_auth_reject(r, req, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "database_unavailable",
                                "the API key cannot be checked now: the "
                                "database is unavailable");
    }

    if (rc == NGX_DONE) {
        /* rejected: the answer is out, and the request may be gone */
        return;
    }

    if (r != r->main && rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    req->auth_rc = rc;
    req->auth_state = NGX_DR_AUTH_DONE;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static ngx_int_t
ngx_dr_auth_cached(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_dr_key_t *kn)
{
    u_char              *p;
    ngx_uint_t           previous;
    ngx_dr_main_conf_t  *dmcf;
    uint32_t             today;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (req->jwt) {
        /* the token's account and generation, not a secret, decide */

        if (kn->key_id == 0 || kn->account_id != req->account_id
            || (int64_t) kn->generation != req->jwt_gen)
        {
            return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                      "invalid_token",
                                      "the access token is no longer "
                                      "valid: log in again");
        }

        goto known;
    }

    /* the key's secret before a rotation, until its grace ends */
    previous = kn->key_id && kn->previous_until > ngx_time()
               && CRYPTO_memcmp(kn->hash, req->hash, 32) != 0
               && CRYPTO_memcmp(kn->previous, req->hash, 32) == 0;

    if (kn->key_id && !previous && CRYPTO_memcmp(kn->hash, req->hash, 32) != 0
        && dmcf->key_secret_previous.value.len
        && ngx_dr_auth_hash(dmcf, 1, req->secret.data, req->secret.len,
                            req->hash)
           == NGX_OK
        && CRYPTO_memcmp(kn->hash, req->hash, 32) == 0)
    {
        /* a key of the previous server secret: hashed again under the
         * current one, for every node, as it is used */
        ngx_dr_auth_rehash(r, req, kn);
    }

    if (kn->key_id == 0
        || (!previous && CRYPTO_memcmp(kn->hash, req->hash, 32) != 0))
    {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_key", "the API key is not known");
    }

known:

    if (kn->revoked) {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "revoked_key",
                                  "the API key has been revoked");
    }

    if (kn->expires && kn->expires <= ngx_time()) {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "expired_key", "the API key has expired");
    }

    req->key_id = kn->key_id;
    req->account_id = kn->account_id;
    req->tier = ngx_dr_limit_find_tier(&dmcf->limit, kn->tier, kn->tier_len);

    if (req->tier == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "API key %L has tier \"%*s\", which this nginx does "
                      "not declare", kn->key_id, (size_t) kn->tier_len,
                      kn->tier);
        return ngx_dr_auth_reject(r, req, NGX_HTTP_FORBIDDEN,
                                  "unknown_tier",
                                  "the API key's tier is not served here");
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    req->key_label.data = p;
    req->key_label.len = ngx_sprintf(p, "%L", kn->key_id) - p;

    req->key_name.data = ngx_pnalloc(r->pool, kn->name_len + 1);
    if (req->key_name.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    req->key_name.len = kn->name_len;
    ngx_memcpy(req->key_name.data, kn->name, kn->name_len);

    today = (uint32_t) (ngx_time() / 86400);

    return ngx_dr_auth_limit(r, req, kn->day == today ? kn->used_today : 0);
}


/* the bucket of the key (or client address) decides */

static ngx_int_t
ngx_dr_auth_limit(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_uint_t daily_seed)
{
    ngx_uint_t           tier;
    ngx_dr_loc_conf_t   *dlcf;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    req->auth_state = NGX_DR_AUTH_DONE;
    req->auth_rc = NGX_OK;

    tier = ngx_dr_limit_tier_index(&dmcf->limit, req->tier);

    ngx_dr_counters_auth(tier, req->key_id ? NGX_DR_M_AUTH_OK
                                           : NGX_DR_M_AUTH_ANONYMOUS);

    if (dmcf->limit.shm_zone == NULL || req->tier == NULL) {
        return NGX_OK;
    }

    if (ngx_dr_auth_wants(r, req, daily_seed) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_dr_limit_take(&dmcf->limit, req->wants, req->nwants,
                          &req->limit)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (req->limit.zone_full) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "dr_limit_zone is full of buckets that cannot go "
                      "without forgiving their clients: %V refused",
                      &req->key_label);
    }

    req->limited = 1;

    if (req->limit.passed) {
        req->limit_status = NGX_DR_LIMIT_PASSED;
        ngx_dr_counters_limit(tier, NGX_DR_LIMIT_PASSED);
        return NGX_OK;
    }

    ngx_dr_counters_limit(tier, dlcf->limit_dry_run ? NGX_DR_LIMIT_DRY_RUN
                                                    : NGX_DR_LIMIT_REJECTED);

    ngx_log_error(dlcf->limit_log_level, r->connection->log, 0,
                  "limiting requests%s of %s %V, tier \"%V\", by \"%V\"%s",
                  dlcf->limit_dry_run ? ", dry run," : "",
                  req->key_id ? "key" : "client", &req->key_label,
                  &req->tier->name, &req->wants[req->limit.most].name,
                  req->limit.daily_exhausted ? ": daily quota used up" : "");

    if (dlcf->limit_dry_run) {
        /* let through: no Retry-After on its answer */
        req->limit_status = NGX_DR_LIMIT_DRY_RUN;
        req->limit.passed = 1;
        return NGX_OK;
    }

    if (req->limit.zone_full) {
        return ngx_dr_auth_refuse(r, req, "limit_zone_full",
                                  "too many clients at once: try again in "
                                  "a moment");
    }

    return ngx_dr_auth_refuse(r, req, "rate_limited",
                              req->limit.daily_exhausted
                              ? "the daily quota of this key is used up"
                              : "too many requests: slow down");
}


/*
 * The buckets of the request: the key's (or its client network's) bucket
 * of its tier, with the daily quota and its usage, then one for each
 * dr_limit of the location, at the policy's rate for the tier
 * ("t:<tier>:k:<key id>", "t:<tier>:a:<network>",
 * "l:<policy>:k|a|v:<who>").  A key reading its own usage (GET
 * /api/usage) takes from a bucket of its own instead of its tier's, as
 * GitHub's rate_limit endpoint does: the key that is refused everywhere
 * else can still see why, and the reading is neither a request of its
 * usage nor of its daily quota.
 */

static ngx_int_t
ngx_dr_auth_wants(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_uint_t daily_seed)
{
    u_char               *p;
    ngx_str_t             who, cost;
    ngx_uint_t            i, n;
    ngx_dr_tier_t        *report;
    ngx_dr_loc_conf_t    *dlcf;
    ngx_dr_policy_t      *policy;
    ngx_dr_limit_ref_t   *ref;
    ngx_dr_main_conf_t   *dmcf;
    ngx_dr_limit_want_t  *w;
    u_char                kind;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);
    n = 1 + (dlcf->limits ? dlcf->limits->nelts : 0);

    w = ngx_pcalloc(r->pool, n * sizeof(ngx_dr_limit_want_t));
    p = ngx_pnalloc(r->pool, ngx_max(req->tier->name.len,
                                     sizeof("usage_report") - 1)
                             + req->key_label.len + 6);
    if (w == NULL || p == NULL) {
        return NGX_ERROR;
    }

    req->wants = w;
    req->nwants = n;

    w[0].name = req->tier->name;
    w[0].tier = req->tier;
    w[0].cost = 1;
    w[0].key_id = req->key_id;
    w[0].daily_seed = daily_seed;
    w[0].usage = 1;

    if (req->key_id && dlcf->api
        && r->uri.len == sizeof("/api/usage") - 1
        && ngx_strncmp(r->uri.data, "/api/usage", r->uri.len) == 0)
    {
        dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
        report = ngx_dr_limit_find_tier(&dmcf->limit,
                                        (u_char *) "usage_report",
                                        sizeof("usage_report") - 1);
        if (report) {
            w[0].name = report->name;
            w[0].tier = report;
            w[0].key_id = 0;
            w[0].daily_seed = 0;
            w[0].usage = 0;
        }
    }

    w[0].key.data = p;
    w[0].key.len = ngx_sprintf(p, "t:%V:%c:%V", &w[0].tier->name,
                               req->key_id ? 'k' : 'a', &req->key_label)
                   - p;

    ref = dlcf->limits ? dlcf->limits->elts : NULL;

    for (i = 1; i < n; i++) {
        policy = ref[i - 1].policy;

        w[i].name = policy->rate.name;
        w[i].tier = ngx_dr_limit_policy_rate(policy, req->tier);
        w[i].cost = ref[i - 1].cost;

        if (ref[i - 1].cost_cv) {
            if (ngx_http_complex_value(r, ref[i - 1].cost_cv, &cost)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            /* not a number: one, as a request without a cost */
            w[i].cost = ngx_atoi(cost.data, cost.len);
            w[i].cost = (w[i].cost == (ngx_uint_t) NGX_ERROR)
                        ? 1 : ngx_min(w[i].cost, 1000000);
        }

        if (ngx_dr_auth_who(r, req, policy, &kind, &who) != NGX_OK) {
            return NGX_ERROR;
        }

        p = ngx_pnalloc(r->pool, policy->rate.name.len + who.len + 6);
        if (p == NULL) {
            return NGX_ERROR;
        }

        w[i].key.data = p;
        w[i].key.len = ngx_sprintf(p, "l:%V:%c:%V", &policy->rate.name,
                                   kind, &who)
                       - p;
    }

    return NGX_OK;
}


/* whose bucket of a policy the request takes from */

static ngx_int_t
ngx_dr_auth_who(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_dr_policy_t *policy, u_char *kind, ngx_str_t *who)
{
    ngx_dr_main_conf_t         *dmcf;
    ngx_http_variable_value_t  *vv;

    if (policy->by == NGX_DR_POLICY_BY_VARIABLE) {
        vv = ngx_http_get_indexed_variable(r, policy->index);

        if (vv && !vv->not_found && vv->len) {
            *kind = 'v';
            who->data = vv->data;
            who->len = ngx_min(vv->len, 256);
            return NGX_OK;
        }

        /* no value: the client's network */
    }

    if (policy->by == NGX_DR_POLICY_BY_KEY && req->key_id) {
        *kind = 'k';
        *who = req->key_label;
        return NGX_OK;
    }

    *kind = 'a';

    if (req->key_id == 0) {
        *who = req->key_label;
        return NGX_OK;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    return ngx_dr_limit_client(&dmcf->limit, r->connection, r->pool, who);
}


/* a refusal of the limits: dr_limit_status, with Retry-After */

static ngx_int_t
ngx_dr_auth_refuse(ngx_http_request_t *r, ngx_dr_request_t *req,
    const char *error, const char *message)
{
    size_t              len;
    ngx_int_t           rc;
    ngx_str_t           body;
    ngx_dr_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    req->limit_status = NGX_DR_LIMIT_REJECTED;

    if (r != r->main) {
        req->auth_rc = dlcf->limit_status;
        return dlcf->limit_status;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        req->auth_rc = NGX_DONE;
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    /*
     * The body of the path a flood takes, written directly: its parts are
     * this file's own words and a number, with nothing to escape.
     */

    len = sizeof("{\"error\":\"\",\"message\":\"\",\"detail\":\"\","
                 "\"retry_after\":}\n") + ngx_strlen(error)
          + 2 * ngx_strlen(message) + NGX_TIME_T_LEN;

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    } else {
        body.len = ngx_sprintf(body.data,
                               "{\"error\":\"%s\",\"message\":\"%s\","
                               "\"detail\":\"%s\",\"retry_after\":%T}\n",
                               error, message, message,
                               req->limit.retry_after)
                   - body.data;

        rc = ngx_dr_http_send(r, dlcf->limit_status, &body, NULL);
    }

    /* the request (and req with it) may be gone after this */
    req->auth_rc = NGX_DONE;
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * Sends the JSON error itself and ends the request, so the access phase
 * stops (NGX_DONE); a rejection is logged once, at info, never with the
 * key.
 */

static ngx_int_t
ngx_dr_auth_reject(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_uint_t status, const char *error, const char *message)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    static ngx_str_t  www_key = ngx_string("WWW-Authenticate");
    static ngx_str_t  www = ngx_string("Bearer realm=\"domain-runner\"");
    static ngx_str_t  www_bad = ngx_string("Bearer realm=\"domain-runner\", "
                                           "error=\"invalid_token\"");

    ngx_dr_counters_auth(NGX_DR_M_TIERS,
        ngx_strcmp(error, "missing_key") == 0 ? NGX_DR_M_AUTH_MISSING
        : ngx_strcmp(error, "expired_key") == 0 ? NGX_DR_M_AUTH_EXPIRED
        : ngx_strcmp(error, "revoked_key") == 0 ? NGX_DR_M_AUTH_REVOKED
        : status == NGX_HTTP_SERVICE_UNAVAILABLE ? NGX_DR_M_AUTH_UNAVAILABLE
        : NGX_DR_M_AUTH_INVALID);

    if (status == NGX_HTTP_UNAUTHORIZED) {
        if (ngx_dr_http_header(r, &www_key,
                               ngx_strcmp(error, "missing_key") == 0
                               ? &www : &www_bad, &h)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->headers_out.www_authenticate = h;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "API key refused: %s", error);
    }

    req->auth_state = NGX_DR_AUTH_DONE;

    if (r != r->main) {
        /* a subrequest's refusal is its status, for whoever made it */
        req->auth_rc = status;
        return status;
    }

    req->auth_rc = NGX_DONE;

    /*
     * The body is read and dropped first: left unread on a keep-alive
     * connection it would be taken for the next request.
     */

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_OK) {
        rc = ngx_dr_json_error(r, status, error, "%s", message);
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/* every answer carries the limits of its key */

static ngx_int_t
ngx_dr_auth_header_filter(ngx_http_request_t *r)
{
    ngx_dr_request_t  *req;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    req = ngx_http_get_module_ctx(r, ngx_http_dr_module);

    if (req && req->limited && req->nwants) {
        req->limited = 0;

        if (ngx_dr_limit_headers(r, req->wants, req->nwants, &req->limit)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


/* a revoked or changed key leaves the cache of the node at once */



/*
 * HMAC-SHA256 of a key's secret under the server's secret.  The digest
 * states after the padded key (RFC 2104's ipad and opad blocks) are made
 * once per worker and copied for each key, so a request costs four
 * SHA-256 blocks and no allocation or algorithm look-up.
 */

ngx_int_t
ngx_dr_auth_hash(ngx_dr_main_conf_t *dmcf, ngx_uint_t previous,
    u_char *secret, size_t len, u_char *out)
{
    unsigned int  n;
    u_char        inner[32];

    if (ngx_dr_auth_work == NULL && ngx_dr_auth_hmac_init(dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_dr_auth_hmac[previous].inner == NULL) {
        return NGX_ERROR;
    }

    if (EVP_MD_CTX_copy_ex(ngx_dr_auth_work,
                           ngx_dr_auth_hmac[previous].inner) != 1
        || EVP_DigestUpdate(ngx_dr_auth_work, secret, len) != 1
        || EVP_DigestFinal_ex(ngx_dr_auth_work, inner, &n) != 1
        || EVP_MD_CTX_copy_ex(ngx_dr_auth_work,
                              ngx_dr_auth_hmac[previous].outer) != 1
        || EVP_DigestUpdate(ngx_dr_auth_work, inner, sizeof(inner)) != 1
        || EVP_DigestFinal_ex(ngx_dr_auth_work, out, &n) != 1
        || n != 32)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A new key "dr_<prefix>_<secret>" in key (from pool), its prefix and
 * the hex of its secret's hash (NUL-terminated): the caller shows the
 * key once and clears it; only the hash is stored.
 */

ngx_int_t
ngx_dr_auth_new_key(ngx_dr_main_conf_t *dmcf, ngx_pool_t *pool,
    ngx_str_t *key, u_char *prefix, u_char *hex)
{
    u_char  *p;
    u_char   secret[NGX_DR_KEY_SECRET_LEN], hash[32];

    p = ngx_pnalloc(pool, NGX_DR_KEY_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_dr_auth_random(prefix, NGX_DR_KEY_PREFIX_LEN,
                           "abcdefghijklmnopqrstuvwxyz0123456789", 36)
        != NGX_OK
        || ngx_dr_auth_random(secret, NGX_DR_KEY_SECRET_LEN,
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "abcdefghijklmnopqrstuvwxyz0123456789", 62)
           != NGX_OK
        || ngx_dr_auth_hash(dmcf, 0, secret, NGX_DR_KEY_SECRET_LEN, hash)
           != NGX_OK)
    {
        ngx_explicit_memzero(secret, sizeof(secret));
        return NGX_ERROR;
    }

    prefix[NGX_DR_KEY_PREFIX_LEN] = '\0';
    *ngx_hex_dump(hex, hash, 32) = '\0';

    key->data = p;
    key->len = ngx_sprintf(p, "dr_%*s_%*s", (size_t) NGX_DR_KEY_PREFIX_LEN,
                           prefix, (size_t) NGX_DR_KEY_SECRET_LEN, secret)
               - p;

    ngx_explicit_memzero(secret, sizeof(secret));
    ngx_explicit_memzero(hash, sizeof(hash));

    return NGX_OK;
}


/* n characters of alphabet, uniformly: bytes past the last whole lap go */

ngx_int_t
ngx_dr_auth_random(u_char *out, size_t n, const char *alphabet, size_t size)
{
    size_t   i, k, limit;
    u_char   buf[64];

    limit = 256 - 256 % size;
    i = 0;

    while (i < n) {
        if (RAND_bytes(buf, sizeof(buf)) != 1) {
            return NGX_ERROR;
        }

        for (k = 0; k < sizeof(buf) && i < n; k++) {
            if (buf[k] < limit) {
                out[i++] = alphabet[buf[k] % size];
            }
        }
    }

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}


static ngx_int_t
ngx_dr_auth_hmac_init(ngx_dr_main_conf_t *dmcf)
{
    if (dmcf->key_secret.value.len == 0) {
        return NGX_ERROR;
    }

    ngx_dr_auth_work = EVP_MD_CTX_new();

    if (ngx_dr_auth_work == NULL
        || ngx_dr_auth_hmac_key(&dmcf->key_secret, 0) != NGX_OK
        || (dmcf->key_secret_previous.value.len
            && ngx_dr_auth_hmac_key(&dmcf->key_secret_previous, 1)
               != NGX_OK))
    {
        ngx_dr_auth_exit_process(NULL);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the HMAC states of one secret, after its padded key blocks */

static ngx_int_t
ngx_dr_auth_hmac_key(ngx_dr_secret_t *secret, ngx_uint_t slot)
{
    size_t        i, len;
    ngx_int_t     rc;
    unsigned int  n;
    EVP_MD       *md;
    u_char        key[64], ipad[64], opad[64];

    md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (md == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(key, sizeof(key));
    len = secret->value.len;
    rc = NGX_ERROR;

    if (len > sizeof(key)) {
        /* a long key is replaced by its digest */
        if (EVP_Digest(secret->value.data, len, key, &n, md, NULL) != 1) {
            goto done;
        }

    } else {
        ngx_memcpy(key, secret->value.data, len);
    }

    for (i = 0; i < sizeof(key); i++) {
        ipad[i] = key[i] ^ 0x36;
        opad[i] = key[i] ^ 0x5c;
    }

    ngx_dr_auth_hmac[slot].inner = EVP_MD_CTX_new();
    ngx_dr_auth_hmac[slot].outer = EVP_MD_CTX_new();

    if (ngx_dr_auth_hmac[slot].inner != NULL
        && ngx_dr_auth_hmac[slot].outer != NULL
        && EVP_DigestInit_ex(ngx_dr_auth_hmac[slot].inner, md, NULL) == 1
        && EVP_DigestUpdate(ngx_dr_auth_hmac[slot].inner, ipad,
                            sizeof(ipad)) == 1
        && EVP_DigestInit_ex(ngx_dr_auth_hmac[slot].outer, md, NULL) == 1
        && EVP_DigestUpdate(ngx_dr_auth_hmac[slot].outer, opad,
                            sizeof(opad)) == 1)
    {
        rc = NGX_OK;
    }

done:

    EVP_MD_free(md);
    ngx_explicit_memzero(key, sizeof(key));
    ngx_explicit_memzero(ipad, sizeof(ipad));
    ngx_explicit_memzero(opad, sizeof(opad));

    return rc;
}


void
ngx_dr_auth_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t  i;

    for (i = 0; i < 2; i++) {
        EVP_MD_CTX_free(ngx_dr_auth_hmac[i].inner);
        EVP_MD_CTX_free(ngx_dr_auth_hmac[i].outer);
        ngx_dr_auth_hmac[i].inner = NULL;
        ngx_dr_auth_hmac[i].outer = NULL;
    }

    EVP_MD_CTX_free(ngx_dr_auth_work);
    ngx_dr_auth_work = NULL;
}




/* variables for log_format */

static ngx_int_t
ngx_dr_auth_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char            *p;
    ngx_str_t         *s;
    ngx_dr_request_t  *req;

    req = ngx_http_get_module_ctx(r->main, ngx_http_dr_module);

    if (req == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case 0:
        if (req->key_id == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%L", req->key_id) - p;
        break;

    case 1:
        if (req->tier == NULL) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = req->tier->name.data;
        v->len = req->tier->name.len;
        break;

    case 2:
        if (req->limit_status == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        s = &ngx_dr_limit_status_names[req->limit_status];
        v->data = s->data;
        v->len = s->len;
        break;

    case 3:
        if (req->key_id == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = req->key_name.data;
        v->len = req->key_name.len;
        break;

    case 4:
        if (req->nwants == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%ui", req->limit.remaining) - p;
        break;

    default:
        /* the most constraining policy; the refusing one of a 429 */
        if (req->nwants == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = req->wants[req->limit.most].name.data;
        v->len = req->wants[req->limit.most].name.len;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}

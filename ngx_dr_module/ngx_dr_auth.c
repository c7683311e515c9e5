
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

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_auth.h"
#include "ngx_dr_keys.h"


#define NGX_DR_AUTH_NONE       0
#define NGX_DR_AUTH_PENDING    1
#define NGX_DR_AUTH_DONE       2





static ngx_int_t ngx_dr_auth_handler(ngx_http_request_t *r);
static ngx_int_t ngx_dr_auth_token(ngx_http_request_t *r, ngx_str_t *token);
static ngx_int_t ngx_dr_auth_key(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_str_t *token);
static ngx_int_t ngx_dr_auth_cached(ngx_http_request_t *r,
    ngx_dr_request_t *req, ngx_dr_key_t *kn);
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


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

/* per worker: the HMAC states after the server secret's padded blocks */
static EVP_MD_CTX  *ngx_dr_auth_inner;
static EVP_MD_CTX  *ngx_dr_auth_outer;
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

    ssize_t           n;
    ngx_str_t        *value;
    ngx_file_t        file;
    ngx_file_info_t   fi;
    u_char            buf[1024];

    if (dmcf->key_secret.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = value[1];
    file.log = cf->log;

    file.fd = ngx_open_file(value[1].data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" cannot open \"%V\"", &cmd->name,
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" cannot stat \"%V\"", &cmd->name,
                           &value[1]);
        (void) ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    if (fi.st_mode & (S_IRGRP|S_IWGRP|S_IROTH|S_IWOTH)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" may be read or written by "
                           "users other than its owner; make it readable "
                           "by its owner only (chmod 600)", &cmd->name,
                           &value[1]);
        (void) ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);
    (void) ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
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
                           "bytes of secret", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    dmcf->key_secret.data = ngx_pnalloc(cf->pool, n);
    if (dmcf->key_secret.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(dmcf->key_secret.data, buf, n);
    dmcf->key_secret.len = n;
    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_CONF_OK;
}




ngx_int_t
ngx_dr_auth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_dr_auth_handler;

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
ngx_dr_auth_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_str_t            token;
    ngx_dr_request_t    *req;
    ngx_dr_loc_conf_t   *dlcf;
    ngx_dr_main_conf_t  *dmcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    if (dlcf->auth == NGX_DR_AUTH_OFF || r != r->main) {
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

        return req->auth_rc;
    }

    if (req->auth_state == NGX_DR_AUTH_PENDING) {
        return NGX_AGAIN;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    rc = ngx_dr_auth_token(r, &token);

    if (rc == NGX_ERROR) {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_key",
                                  "two different API keys were sent: use "
                                  "X-API-Key or Authorization, not both");
    }

    if (rc == NGX_DECLINED) {
        if (dlcf->auth == NGX_DR_AUTH_REQUIRED) {
            return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                      "missing_key",
                                      "an API key is needed, in X-API-Key "
                                      "or Authorization: Bearer");
        }

        /* anonymous: limited by client address */

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

    return ngx_dr_auth_key(r, req, &token);
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
            /* another scheme: a form we cannot read, so a bad key */
            bearer.len = bearer.len ? bearer.len : 1;
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
    ngx_int_t             rc;
    ngx_str_t             client;
    ngx_uint_t            i;
    ngx_dr_key_t          key;
    ngx_dr_main_conf_t   *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    /* the form first: no hashing, no look-up for garbage */

    p = token->data;

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

    if (ngx_dr_auth_hash(dmcf, p + 4 + NGX_DR_KEY_PREFIX_LEN,
                         NGX_DR_KEY_SECRET_LEN, req->hash)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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
    ngx_str_t               key;
    ngx_dr_tier_t          *tier;
    ngx_dr_main_conf_t     *dmcf;
    ngx_dr_limit_result_t   res;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (dmcf->limit.shm_zone == NULL) {
        return NGX_OK;
    }

    tier = ngx_dr_limit_find_tier(&dmcf->limit, (u_char *) "key_lookup",
                                  sizeof("key_lookup") - 1);

    p = ngx_pnalloc(r->pool, sizeof("t:key_lookup:a:") - 1 + client->len);
    if (p == NULL || tier == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key.data = p;
    key.len = ngx_sprintf(p, "t:key_lookup:a:%V", client) - p;

    if (ngx_dr_limit_take(&dmcf->limit, &key, 0, tier, 0, &res) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (res.passed) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "client %V looks up too many unknown API keys: refused "
                  "without a query", client);

    req->tier = tier;
    req->limit = res;
    req->limited = 1;

    return ngx_dr_auth_refuse(r, req, "too_many_key_lookups",
                              "too many API keys tried that are not known "
                              "here: slow down");
}


/* the outcome of the look-up: the access phase goes on */

static void
ngx_dr_auth_found(ngx_http_request_t *r, ngx_dr_key_t *key, ngx_int_t rc)
{
    ngx_dr_request_t  *req;

    req = ngx_dr_request(r);

    req->auth_state = NGX_DR_AUTH_DONE;
    r->read_event_handler = ngx_http_block_reading;

    if (rc != NGX_OK) {
        req->auth_state = NGX_DR_AUTH_NONE;
        (void) ngx_dr_auth_reject(r, req, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "database_unavailable",
                                  "the API key cannot be checked now: the "
                                  "database is unavailable");
        return;
    }

    req->auth_state = NGX_DR_AUTH_NONE;
    rc = ngx_dr_auth_cached(r, req, key);

    if (rc == NGX_DONE) {
        /* rejected: the answer is out, and the request may be gone */
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
    ngx_dr_main_conf_t  *dmcf;
    uint32_t             today;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (kn->key_id == 0 || CRYPTO_memcmp(kn->hash, req->hash, 32) != 0) {
        return ngx_dr_auth_reject(r, req, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_key", "the API key is not known");
    }

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

    today = (uint32_t) (ngx_time() / 86400);

    return ngx_dr_auth_limit(r, req, kn->day == today ? kn->used_today : 0);
}


/* the bucket of the key (or client address) decides */

static ngx_int_t
ngx_dr_auth_limit(ngx_http_request_t *r, ngx_dr_request_t *req,
    ngx_uint_t daily_seed)
{
    u_char              *p;
    ngx_str_t            key;
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

    /* "t:<tier>:k:<key id>" or "t:<tier>:a:<address>" */

    p = ngx_pnalloc(r->pool, req->tier->name.len + req->key_label.len + 6);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key.data = p;
    key.len = ngx_sprintf(p, "t:%V:%c:%V", &req->tier->name,
                          req->key_id ? 'k' : 'a', &req->key_label)
              - p;

    if (ngx_dr_limit_take(&dmcf->limit, &key, req->key_id, req->tier,
                          daily_seed, &req->limit)
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
                  "limiting requests%s of %s %V, tier \"%V\"%s",
                  dlcf->limit_dry_run ? ", dry run," : "",
                  req->key_id ? "key" : "client", &req->key_label,
                  &req->tier->name,
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


/* a refusal of the limits: dr_limit_status, with Retry-After */

static ngx_int_t
ngx_dr_auth_refuse(ngx_http_request_t *r, ngx_dr_request_t *req,
    const char *error, const char *message)
{
    ngx_int_t           rc;
    ngx_dr_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    req->limit_status = NGX_DR_LIMIT_REJECTED;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        req->auth_rc = NGX_DONE;
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    rc = ngx_dr_json_send(r, dlcf->limit_status,
        json_pack("{s:s, s:s, s:s, s:I}", "error", error,
                  "message", message, "detail", message,
                  "retry_after", (json_int_t) req->limit.retry_after));

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

    if (req && req->limited && req->tier) {
        req->limited = 0;

        if (ngx_dr_limit_headers(r, req->tier, &req->limit) != NGX_OK) {
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
ngx_dr_auth_hash(ngx_dr_main_conf_t *dmcf, u_char *secret, size_t len,
    u_char *out)
{
    unsigned int  n;
    u_char        inner[32];

    if (ngx_dr_auth_inner == NULL && ngx_dr_auth_hmac_init(dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (EVP_MD_CTX_copy_ex(ngx_dr_auth_work, ngx_dr_auth_inner) != 1
        || EVP_DigestUpdate(ngx_dr_auth_work, secret, len) != 1
        || EVP_DigestFinal_ex(ngx_dr_auth_work, inner, &n) != 1
        || EVP_MD_CTX_copy_ex(ngx_dr_auth_work, ngx_dr_auth_outer) != 1
        || EVP_DigestUpdate(ngx_dr_auth_work, inner, sizeof(inner)) != 1
        || EVP_DigestFinal_ex(ngx_dr_auth_work, out, &n) != 1
        || n != 32)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_dr_auth_hmac_init(ngx_dr_main_conf_t *dmcf)
{
    size_t        i, len;
    unsigned int  n;
    EVP_MD       *md;
    u_char        key[64], ipad[64], opad[64];

    if (dmcf->key_secret.len == 0) {
        return NGX_ERROR;
    }

    md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (md == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(key, sizeof(key));
    len = dmcf->key_secret.len;

    if (len > sizeof(key)) {
        /* a long key is replaced by its digest */
        if (EVP_Digest(dmcf->key_secret.data, len, key, &n, md, NULL) != 1) {
            EVP_MD_free(md);
            return NGX_ERROR;
        }

    } else {
        ngx_memcpy(key, dmcf->key_secret.data, len);
    }

    for (i = 0; i < sizeof(key); i++) {
        ipad[i] = key[i] ^ 0x36;
        opad[i] = key[i] ^ 0x5c;
    }

    ngx_dr_auth_inner = EVP_MD_CTX_new();
    ngx_dr_auth_outer = EVP_MD_CTX_new();
    ngx_dr_auth_work = EVP_MD_CTX_new();

    if (ngx_dr_auth_inner == NULL || ngx_dr_auth_outer == NULL
        || ngx_dr_auth_work == NULL
        || EVP_DigestInit_ex(ngx_dr_auth_inner, md, NULL) != 1
        || EVP_DigestUpdate(ngx_dr_auth_inner, ipad, sizeof(ipad)) != 1
        || EVP_DigestInit_ex(ngx_dr_auth_outer, md, NULL) != 1
        || EVP_DigestUpdate(ngx_dr_auth_outer, opad, sizeof(opad)) != 1)
    {
        EVP_MD_free(md);
        ngx_explicit_memzero(key, sizeof(key));
        ngx_explicit_memzero(ipad, sizeof(ipad));
        ngx_explicit_memzero(opad, sizeof(opad));
        ngx_dr_auth_exit_process(NULL);
        return NGX_ERROR;
    }

    EVP_MD_free(md);
    ngx_explicit_memzero(key, sizeof(key));
    ngx_explicit_memzero(ipad, sizeof(ipad));
    ngx_explicit_memzero(opad, sizeof(opad));

    return NGX_OK;
}


void
ngx_dr_auth_exit_process(ngx_cycle_t *cycle)
{
    EVP_MD_CTX_free(ngx_dr_auth_inner);
    EVP_MD_CTX_free(ngx_dr_auth_outer);
    EVP_MD_CTX_free(ngx_dr_auth_work);

    ngx_dr_auth_inner = NULL;
    ngx_dr_auth_outer = NULL;
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

    default:
        if (req->limit_status == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        s = &ngx_dr_limit_status_names[req->limit_status];
        v->data = s->data;
        v->len = s->len;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}

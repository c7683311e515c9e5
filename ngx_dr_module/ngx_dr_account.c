
/*
 * Domain Runner: the accounts of the original public API.
 *
 *   POST /api/auth/register {email, password, full_name}
 *   POST /api/auth/login {email, password}
 *   POST /api/auth/password {password, new_password}   (signed in)
 *   GET  /api/auth/me                                  (signed in)
 *
 * Passwords are hashed with scrypt (ngx_dr_credential.c), which takes
 * tens of milliseconds of a CPU: it runs in nginx's thread pool
 * "default", never in the event loop, when nginx has threads.  Access
 * tokens are JWTs signed under dr_jwt_secret_file; dr_auth accepts them
 * as the account's key (ngx_dr_auth.c).  Sign-ins are limited per client
 * network in shared memory (the "login" tier, every attempt) and per
 * account and network in PostgreSQL (failures only, 15 minutes), so a
 * guesser meets a 429 while the owner elsewhere is not locked out.
 * Neither a password nor a token is ever logged.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/rand.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_auth.h"
#include "ngx_dr_keys.h"
#include "ngx_dr_credential.h"
#include "ngx_dr_account.h"


#define NGX_DR_ACCOUNT_BODY_MAX     4096

/* failures of one network on one account, and of all, in 15 minutes */
#define NGX_DR_ACCOUNT_FAILURES     10
#define NGX_DR_ACCOUNT_WINDOW       900

#define NGX_DR_ACCOUNT_REGISTER     0
#define NGX_DR_ACCOUNT_LOGIN        1
#define NGX_DR_ACCOUNT_PASSWORD     2

#define NGX_DR_ISO_TIME  "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

#define NGX_DR_INCORRECT  "Incorrect email or password"


typedef struct {
    ngx_http_request_t  *request;
    ngx_uint_t           op;
    ngx_str_t            email;         /* lower-cased, C string */
    ngx_str_t            full_name;
    ngx_str_t            password;      /* cleared when hashed */
    ngx_str_t            new_password;
    ngx_str_t            address;       /* the client's network */
    char                 stored[NGX_DR_PASSWORD_HASH_MAX];
    char                 made[NGX_DR_PASSWORD_HASH_MAX];
    u_char               salt[NGX_DR_SCRYPT_SALT];
    int                  verified;      /* 1: the password matched */
    int                  hashed;        /* 0: made holds a new hash */
    int64_t              account_id;
    int64_t              generation;
    u_char               prefix[NGX_DR_JWT_PREFIX_MAX + 1];
    ngx_str_t            key;           /* a new key, shown once */
    u_char               key_prefix[NGX_DR_KEY_PREFIX_LEN + 1];
    u_char               key_hex[65];
} ngx_dr_account_ctx_t;


static ngx_int_t ngx_dr_account_start(ngx_http_request_t *r,
    ngx_uint_t op);
static void ngx_dr_account_body(ngx_http_request_t *r);
static ngx_int_t ngx_dr_account_parse(ngx_http_request_t *r,
    ngx_dr_account_ctx_t *ctx, json_t *body);
static ngx_int_t ngx_dr_account_string(ngx_http_request_t *r, json_t *body,
    const char *name, ngx_str_t *out);
static ngx_int_t ngx_dr_account_limit(ngx_http_request_t *r,
    ngx_dr_account_ctx_t *ctx);
static ngx_int_t ngx_dr_account_lookup(ngx_http_request_t *r,
    ngx_dr_account_ctx_t *ctx);
static ngx_int_t ngx_dr_account_found(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_account_work(ngx_http_request_t *r,
    ngx_dr_account_ctx_t *ctx);
static void ngx_dr_account_hash(void *data, ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_dr_account_hashed(ngx_event_t *ev);
#endif
static void ngx_dr_account_resume(ngx_http_request_t *r);
static ngx_int_t ngx_dr_account_next(ngx_http_request_t *r,
    ngx_dr_account_ctx_t *ctx);
static ngx_int_t ngx_dr_account_created(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_account_failed(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_account_signed_in(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_account_changed(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_account_token(ngx_http_request_t *r,
    ngx_dr_account_ctx_t *ctx, ngx_uint_t status, json_t *answer);
static ngx_int_t ngx_dr_account_shown(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static void ngx_dr_account_clear(ngx_dr_account_ctx_t *ctx);
static ngx_int_t ngx_dr_account_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *detail);
static ngx_int_t ngx_dr_account_refuse(ngx_http_request_t *r,
    time_t retry_after, const char *detail);


/*
 * The account and its first key, made by one statement; nothing when
 * the address is taken.
 */
static const char  ngx_dr_account_register_sql[] =
    "WITH a AS ("
    " INSERT INTO accounts (email, full_name, password_hash)"
    " VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING RETURNING *),"
    " k AS ("
    " INSERT INTO api_keys (prefix, secret_hash, name, tier,"
    "  secret_version, owner, account_id)"
    " SELECT $4, decode($5, 'hex'), left('account ' || a.email, 200),"
    "  'free', $6, a.email, a.id FROM a"
    " RETURNING prefix, tier) "
    "SELECT a.id, a.email, a.full_name,"
    " to_char(a.created_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"
    " a.generation, k.prefix, k.tier FROM a, k";

/*
 * An account by its address ($1) or id ($3): its hash, generation, the
 * key its tokens act as (its oldest usable one), its address, and the
 * recent failed sign-ins of the address from the client's network ($2).
 * One row whether the account exists or not: an unknown address has its
 * failures counted and refused as a known one.
 */
static const char  ngx_dr_account_lookup_sql[] =
    "SELECT a.id, a.password_hash, a.generation, k.prefix,"
    " coalesce((SELECT f.failures FROM login_failures f"
    "  WHERE f.email = coalesce($1, a.email) AND f.address = $2"
    "   AND f.first_at > now() - interval '15 minutes'), 0),"
    " a.email "
    "FROM (SELECT 1) one LEFT JOIN accounts a"
    " ON a.email = $1 OR a.id = $3::int8 "
    "LEFT JOIN LATERAL ("
    " SELECT prefix FROM api_keys"
    " WHERE account_id = a.id AND revoked_at IS NULL"
    "  AND (expires_at IS NULL OR expires_at > now())"
    " ORDER BY id LIMIT 1) k ON true";

/* a failed sign-in of an address ($1) from a network ($2) */
static const char  ngx_dr_account_failed_sql[] =
    "WITH old AS (DELETE FROM login_failures"
    " WHERE first_at < now() - interval '1 hour'"
    "  AND (email, address) <> ($1, $2)) "
    "INSERT INTO login_failures (email, address, failures)"
    " VALUES ($1, $2, 1)"
    " ON CONFLICT (email, address) DO UPDATE SET"
    " failures = CASE"
    "  WHEN login_failures.first_at > now() - interval '15 minutes'"
    "  THEN login_failures.failures + 1 ELSE 1 END,"
    " first_at = CASE"
    "  WHEN login_failures.first_at > now() - interval '15 minutes'"
    "  THEN login_failures.first_at ELSE now() END";

static const char  ngx_dr_account_signed_in_sql[] =
    "DELETE FROM login_failures WHERE email = $1 AND address = $2";

/* a new password: the generation moves on, so older tokens end */
static const char  ngx_dr_account_password_sql[] =
    "UPDATE accounts SET password_hash = $2, generation = generation + 1,"
    " updated_at = now()"
    " WHERE id = $1 AND generation = $3 RETURNING generation";

static const char  ngx_dr_account_me_sql[] =
    "SELECT a.id, a.email, a.full_name,"
    " to_char(a.created_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"
    " coalesce((SELECT json_agg(json_build_object("
    "   'id', k.id, 'key', 'dr_' || k.prefix || '_****', 'name', k.name,"
    "   'tier', k.tier,"
    "   'created_at', to_char(k.created_at AT TIME ZONE 'UTC', "
    NGX_DR_ISO_TIME "),"
    "   'last_used_at', to_char(k.last_used_at AT TIME ZONE 'UTC', "
    NGX_DR_ISO_TIME "),"
    "   'revoked', k.revoked_at IS NOT NULL) ORDER BY k.id)"
    "  FROM api_keys k WHERE k.account_id = a.id), '[]')::text,"
    " coalesce((SELECT json_agg(json_build_object('date', d.day,"
    "   'requests', d.requests, 'rejected', d.rejected, 'errors', d.errors)"
    "   ORDER BY d.day DESC)"
    "  FROM (SELECT u.day, sum(u.requests) AS requests,"
    "   sum(u.rejected) AS rejected, sum(u.errors) AS errors"
    "   FROM usage_daily u JOIN api_keys k ON k.id = u.key_id"
    "   WHERE k.account_id = a.id"
    "    AND u.day > (now() AT TIME ZONE 'UTC')::date - 30"
    "   GROUP BY u.day) d), '[]')::text "
    "FROM accounts a WHERE a.id = $1";

/* what an unknown address is checked against, so that it takes as long */
static const char  ngx_dr_account_nobody[] =
    "scrypt$14$8$1$AAAAAAAAAAAAAAAAAAAAAA$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";


ngx_int_t
ngx_dr_account_init(ngx_conf_t *cf)
{
#if (NGX_THREADS)
    ngx_dr_main_conf_t  *dmcf;

    static ngx_str_t  name = ngx_string("default");

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dr_module);

    if (dmcf->jwt_secret.value.len == 0) {
        /* no accounts here: no threads for them either */
        return NGX_OK;
    }

    /* sized by "thread_pool default threads=N;" if the operator likes */
    dmcf->password_pool = ngx_thread_pool_add(cf, &name);
    if (dmcf->password_pool == NULL) {
        return NGX_ERROR;
    }
#endif

    return NGX_OK;
}


ngx_int_t
ngx_dr_account_register(ngx_http_request_t *r)
{
    return ngx_dr_account_start(r, NGX_DR_ACCOUNT_REGISTER);
}


ngx_int_t
ngx_dr_account_login(ngx_http_request_t *r)
{
    return ngx_dr_account_start(r, NGX_DR_ACCOUNT_LOGIN);
}


ngx_int_t
ngx_dr_account_password(ngx_http_request_t *r)
{
    return ngx_dr_account_start(r, NGX_DR_ACCOUNT_PASSWORD);
}


/* POST only; the body is read, then parsed */

static ngx_int_t
ngx_dr_account_start(ngx_http_request_t *r, ngx_uint_t op)
{
    ngx_int_t              rc;
    ngx_dr_request_t      *req;
    ngx_dr_main_conf_t    *dmcf;
    ngx_dr_account_ctx_t  *ctx;

    static ngx_str_t  allow_key = ngx_string("Allow");
    static ngx_str_t  allow = ngx_string("POST, OPTIONS");

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    req = ngx_dr_request(r);

    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ngx_dr_http_header(r, &allow_key, &allow, NULL) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_dr_json_error(r, NGX_HTTP_NOT_ALLOWED,
                                 "method_not_allowed",
                                 "this endpoint accepts POST only");
    }

    if (dmcf->jwt_secret.value.len == 0 || dmcf->pg.primary == NULL) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "accounts are not served here (no "
                                 "dr_jwt_secret_file)");
    }

    if (op == NGX_DR_ACCOUNT_PASSWORD && req->account_id == 0) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_dr_account_error(r, NGX_HTTP_UNAUTHORIZED,
                                    "not_authenticated",
                                    "Not authenticated");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_dr_account_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->op = op;
    req->account = ctx;

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_dr_account_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_dr_account_body(ngx_http_request_t *r)
{
    json_t                *body;
    ngx_int_t              rc;
    ngx_str_t              text;
    ngx_chain_t           *cl;
    json_error_t           err;
    ngx_dr_request_t      *req;
    ngx_dr_account_ctx_t  *ctx;

    req = ngx_dr_request(r);
    ctx = req->account;

    rc = ngx_dr_http_body(r, NGX_DR_ACCOUNT_BODY_MAX, &text);

    if (rc == NGX_DECLINED) {
        ngx_http_finalize_request(r,
            ngx_dr_account_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                 "body_too_large",
                                 "the request body is larger than 4 KiB"));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    body = json_loadb((char *) text.data, text.len, JSON_REJECT_DUPLICATES,
                      &err);

    /* the body held the password: it is not kept beyond the parse */
    ngx_explicit_memzero(text.data, text.len);

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        if (!cl->buf->in_file && cl->buf->pos) {
            ngx_explicit_memzero(cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    if (body == NULL) {
        ngx_http_finalize_request(r,
            ngx_dr_account_error(r, NGX_HTTP_BAD_REQUEST, "invalid_json",
                                 "the body is not valid JSON"));
        return;
    }

    rc = ngx_dr_account_parse(r, ctx, body);

    json_decref(body);

    if (rc == NGX_DECLINED) {
        rc = ngx_dr_account_limit(r, ctx);
    }

    if (rc == NGX_DECLINED) {
        rc = (ctx->op == NGX_DR_ACCOUNT_REGISTER)
             ? ngx_dr_account_work(r, ctx)
             : ngx_dr_account_lookup(r, ctx);
    }

    if (rc != NGX_DONE) {
        ngx_dr_account_clear(ctx);
    }

    ngx_http_finalize_request(r, rc);
}


/* the fields of the body, checked: NGX_DECLINED, or the 400 sent */

static ngx_int_t
ngx_dr_account_parse(ngx_http_request_t *r, ngx_dr_account_ctx_t *ctx,
    json_t *body)
{
    size_t       i;
    ngx_int_t    rc;
    const char  *why;

    switch (ctx->op) {

    case NGX_DR_ACCOUNT_REGISTER:
        rc = ngx_dr_http_fields(r, body, "email, password, full_name");
        break;

    case NGX_DR_ACCOUNT_LOGIN:
        rc = ngx_dr_http_fields(r, body, "email, password");
        break;

    default: /* NGX_DR_ACCOUNT_PASSWORD */
        rc = ngx_dr_http_fields(r, body, "password, new_password");
        break;
    }

    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ctx->op != NGX_DR_ACCOUNT_PASSWORD) {
        rc = ngx_dr_account_string(r, body, "email", &ctx->email);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        for (i = 0; i < ctx->email.len; i++) {
            ctx->email.data[i] = ngx_tolower(ctx->email.data[i]);
        }
    }

    rc = ngx_dr_account_string(r, body, "password", &ctx->password);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ctx->op == NGX_DR_ACCOUNT_PASSWORD) {
        rc = ngx_dr_account_string(r, body, "new_password",
                                   &ctx->new_password);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        why = ngx_dr_credential_password(ctx->new_password.data,
                                         ctx->new_password.len);
        if (why) {
            return ngx_dr_account_error(r, NGX_HTTP_BAD_REQUEST,
                                        "weak_password", why);
        }
    }

    if (ctx->op != NGX_DR_ACCOUNT_REGISTER) {
        return NGX_DECLINED;
    }

    why = ngx_dr_credential_email(ctx->email.data, ctx->email.len);
    if (why) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_email",
                                 "email: %s", why);
    }

    why = ngx_dr_credential_password(ctx->password.data, ctx->password.len);
    if (why) {
        return ngx_dr_account_error(r, NGX_HTTP_BAD_REQUEST,
                                    "weak_password", why);
    }

    if (json_object_get(body, "full_name") == NULL) {
        ngx_str_set(&ctx->full_name, "");
        return NGX_DECLINED;
    }

    rc = ngx_dr_account_string(r, body, "full_name", &ctx->full_name);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    for (i = 0; i < ctx->full_name.len; i++) {
        if (ctx->full_name.data[i] < 0x20 || ctx->full_name.data[i] == 0x7f)
        {
            break;
        }
    }

    if (ctx->full_name.len > 200 || i < ctx->full_name.len) {
        return ngx_dr_account_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                    "full_name: at most 200 bytes, no "
                                    "control characters");
    }

    return NGX_DECLINED;
}


/* a string field, copied as a C string */

static ngx_int_t
ngx_dr_account_string(ngx_http_request_t *r, json_t *body, const char *name,
    ngx_str_t *out)
{
    json_t  *v;
    size_t   len;

    v = json_object_get(body, name);

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > NGX_DR_ACCOUNT_BODY_MAX)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "%s: a string is needed", name);
    }

    len = json_string_length(v);

    out->data = ngx_pnalloc(r->pool, len + 1);
    if (out->data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(out->data, json_string_value(v), len);
    out->data[len] = '\0';
    out->len = len;

    return NGX_DECLINED;
}


/*
 * Every attempt takes a token of the client network's "login" bucket:
 * NGX_DECLINED, or the 429 sent.
 */

static ngx_int_t
ngx_dr_account_limit(ngx_http_request_t *r, ngx_dr_account_ctx_t *ctx)
{
    u_char                 *p;
    ngx_dr_tier_t          *tier;
    ngx_dr_main_conf_t     *dmcf;
    ngx_dr_limit_want_t     w;
    ngx_dr_limit_result_t   res;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (ngx_dr_limit_client(&dmcf->limit, r->connection, r->pool,
                            &ctx->address)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tier = ngx_dr_limit_find_tier(&dmcf->limit, (u_char *) "login",
                                  sizeof("login") - 1);

    if (dmcf->limit.shm_zone == NULL || tier == NULL) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, sizeof("t:login:a:") - 1 + ctx->address.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&w, sizeof(ngx_dr_limit_want_t));
    w.name = tier->name;
    w.tier = tier;
    w.cost = 1;
    w.key.data = p;
    w.key.len = ngx_sprintf(p, "t:login:a:%V", &ctx->address) - p;

    if (ngx_dr_limit_take(&dmcf->limit, &w, 1, &res) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (res.passed) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "client %V tries to sign in too often: refused",
                  &ctx->address);

    return ngx_dr_account_refuse(r, ngx_max(res.retry_after, 1),
                                 "Too many attempts: try again later");
}


/* the account of a sign-in or of a change of password */

static ngx_int_t
ngx_dr_account_lookup(ngx_http_request_t *r, ngx_dr_account_ctx_t *ctx)
{
    u_char            *p;
    const char        *params[3];
    ngx_dr_request_t  *req;

    req = ngx_dr_request(r);

    params[0] = ctx->email.len ? (const char *) ctx->email.data : NULL;
    params[1] = (const char *) ngx_dr_cstr(r->pool, &ctx->address);
    params[2] = NULL;

    if (ctx->op == NGX_DR_ACCOUNT_PASSWORD) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *ngx_sprintf(p, "%L", req->account_id) = '\0';
        params[2] = (const char *) p;
    }

    if (params[1] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_account_lookup_sql, 3, params,
                             ngx_dr_account_found);
}


static ngx_int_t
ngx_dr_account_found(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    size_t                 len;
    ngx_int_t              rc;
    ngx_dr_request_t      *req;
    ngx_dr_account_ctx_t  *ctx;

    req = ngx_dr_request(r);
    ctx = req->account;

    if (q->rc != NGX_DR_PG_OK) {
        ngx_dr_account_clear(ctx);
        return ngx_dr_http_unavailable(r, q);
    }

    /* an unknown address costs a hash too: its answer tells nothing */
    (void) ngx_cpystrn((u_char *) ctx->stored,
                       (u_char *) ngx_dr_account_nobody,
                       sizeof(ctx->stored));

    if (PQntuples(q->res) != 1) {
        ngx_dr_account_clear(ctx);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!PQgetisnull(q->res, 0, 0)) {
        ctx->account_id = ngx_atoof((u_char *) PQgetvalue(q->res, 0, 0),
                                    PQgetlength(q->res, 0, 0));
        (void) ngx_cpystrn((u_char *) ctx->stored,
                           (u_char *) PQgetvalue(q->res, 0, 1),
                           sizeof(ctx->stored));
        ctx->generation = ngx_atoof((u_char *) PQgetvalue(q->res, 0, 2),
                                    PQgetlength(q->res, 0, 2));

        len = ngx_min((size_t) PQgetlength(q->res, 0, 3),
                      NGX_DR_JWT_PREFIX_MAX);
        ngx_memcpy(ctx->prefix, PQgetvalue(q->res, 0, 3), len);
        ctx->prefix[len] = '\0';

        if (ctx->email.len == 0) {
            /* a change of password: its failures are the address's */
            ctx->email.len = PQgetlength(q->res, 0, 5);
            ctx->email.data = ngx_pnalloc(r->pool, ctx->email.len + 1);
            if (ctx->email.data == NULL) {
                ngx_dr_account_clear(ctx);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            (void) ngx_cpystrn(ctx->email.data,
                               (u_char *) PQgetvalue(q->res, 0, 5),
                               ctx->email.len + 1);
        }
    }

    if (ngx_atoi((u_char *) PQgetvalue(q->res, 0, 4),
                 PQgetlength(q->res, 0, 4))
        >= NGX_DR_ACCOUNT_FAILURES)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "too many failed sign-ins from %V: refused",
                      &ctx->address);
        ngx_dr_account_clear(ctx);

        return ngx_dr_account_refuse(r, NGX_DR_ACCOUNT_WINDOW,
                                     "Too many failed login attempts: "
                                     "try again in 15 minutes");
    }

    rc = ngx_dr_account_work(r, ctx);

    if (rc != NGX_DONE) {
        ngx_dr_account_clear(ctx);
    }

    return rc;
}


/*
 * scrypt: in the thread pool (the request waits, blocked, and goes on in
 * ngx_dr_account_resume), or here without threads
 */

static ngx_int_t
ngx_dr_account_work(ngx_http_request_t *r, ngx_dr_account_ctx_t *ctx)
{
#if (NGX_THREADS)
    ngx_thread_task_t   *task;
    ngx_dr_main_conf_t  *dmcf;
#endif

    if (RAND_bytes(ctx->salt, sizeof(ctx->salt)) != 1) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->hashed = -1;

#if (NGX_THREADS)

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (dmcf->password_pool) {
        task = ngx_thread_task_alloc(r->pool, 0);
        if (task == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        task->ctx = ctx;
        task->handler = ngx_dr_account_hash;
        task->event.data = r;
        task->event.handler = ngx_dr_account_hashed;

        if (ngx_thread_task_post(dmcf->password_pool, task) != NGX_OK) {
            return ngx_dr_account_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "busy", "too busy: try again");
        }

        r->main->blocked++;
        r->main->count++;
        r->aio = 1;
        r->write_event_handler = ngx_dr_account_resume;

        return NGX_DONE;
    }

#endif

    ngx_dr_account_hash(ctx, r->connection->log);

    return ngx_dr_account_next(r, ctx);
}


/* in a thread: only the pure functions, nothing of nginx's */

static void
ngx_dr_account_hash(void *data, ngx_log_t *log)
{
    ngx_dr_account_ctx_t  *ctx = data;

    switch (ctx->op) {

    case NGX_DR_ACCOUNT_REGISTER:
        ctx->hashed = ngx_dr_password_hash(ctx->password.data,
                                           ctx->password.len, ctx->salt,
                                           ctx->made);
        break;

    case NGX_DR_ACCOUNT_LOGIN:
        ctx->verified = ngx_dr_password_verify(ctx->password.data,
                                               ctx->password.len,
                                               ctx->stored);
        break;

    default: /* NGX_DR_ACCOUNT_PASSWORD */
        ctx->verified = ngx_dr_password_verify(ctx->password.data,
                                               ctx->password.len,
                                               ctx->stored);
        if (ctx->verified == 1) {
            ctx->hashed = ngx_dr_password_hash(ctx->new_password.data,
                                               ctx->new_password.len,
                                               ctx->salt, ctx->made);
        }

        break;
    }
}


#if (NGX_THREADS)

/* back in the event loop: as nginx's own thread tasks do */

static void
ngx_dr_account_hashed(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    r->aio = 0;

    /* ngx_dr_account_resume(), or nginx's end of a request gone */
    r->write_event_handler(r);

    ngx_http_run_posted_requests(c);
}

#endif


static void
ngx_dr_account_resume(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_dr_request_t      *req;
    ngx_dr_account_ctx_t  *ctx;

    /*
     * The connection's write event may come while the hash is still
     * being made (a client sending more on a kept-alive connection): the
     * request goes on only once the thread is done with it.
     */
    if (r->aio) {
        return;
    }

    req = ngx_dr_request(r);
    ctx = req->account;

    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_dr_account_next(r, ctx);

    if (rc != NGX_DONE) {
        ngx_dr_account_clear(ctx);
    }

    ngx_http_finalize_request(r, rc);
}


/* what the hash said: the statement that follows, or the answer */

static ngx_int_t
ngx_dr_account_next(ngx_http_request_t *r, ngx_dr_account_ctx_t *ctx)
{
    u_char              *p;
    const char          *params[6], *email[2];
    ngx_dr_request_t    *req;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    req = ngx_dr_request(r);

    ngx_explicit_memzero(ctx->password.data, ctx->password.len);
    ngx_explicit_memzero(ctx->new_password.data, ctx->new_password.len);

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN * 2 + 2);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = (const char *) p;
    (void) ngx_sprintf(p, "%L%Z", ctx->account_id);
    params[1] = (const char *) ngx_dr_cstr(r->pool, &ctx->address);

    if (ctx->op == NGX_DR_ACCOUNT_REGISTER) {
        if (ctx->hashed != 0
            || ngx_dr_auth_new_key(dmcf, r->pool, &ctx->key,
                                   ctx->key_prefix, ctx->key_hex)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        params[0] = (const char *) ctx->email.data;
        params[1] = (const char *) ngx_dr_cstr(r->pool, &ctx->full_name);
        params[2] = ctx->made;
        params[3] = (const char *) ctx->key_prefix;
        params[4] = (const char *) ctx->key_hex;
        params[5] = (const char *) dmcf->key_secret.version;

        return ngx_dr_http_query(r, 0, 0, ngx_dr_account_register_sql, 6,
                                 params, ngx_dr_account_created);
    }

    /* the failures and the successes are the address's, known or not */
    email[0] = (const char *) ctx->email.data;
    email[1] = params[1];

    if (ctx->verified != 1 || ctx->account_id == 0) {
        if (ctx->email.len == 0) {
            /* an account gone while its password was being changed */
            return ngx_dr_account_error(r, NGX_HTTP_UNAUTHORIZED,
                                        "invalid_credentials",
                                        NGX_DR_INCORRECT);
        }

        /* counted before the answer, the same for an unknown address:
         * the next attempt sees it */
        return ngx_dr_http_query(r, 0, 0, ngx_dr_account_failed_sql, 2,
                                 email, ngx_dr_account_failed);
    }

    if (ctx->op == NGX_DR_ACCOUNT_LOGIN) {
        return ngx_dr_http_query(r, 0, 0, ngx_dr_account_signed_in_sql, 2,
                                 email, ngx_dr_account_signed_in);
    }

    if (ctx->hashed != 0 || req->account_id != ctx->account_id) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ngx_sprintf(p, "%L", ctx->generation) = '\0';

    params[1] = ctx->made;
    params[2] = (const char *) p;

    return ngx_dr_http_query(r, 0, 0, ngx_dr_account_password_sql, 3,
                             params, ngx_dr_account_changed);
}


static ngx_int_t
ngx_dr_account_created(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t                *answer;
    ngx_int_t              rc;
    ngx_dr_request_t      *req;
    ngx_dr_account_ctx_t  *ctx;

    req = ngx_dr_request(r);
    ctx = req->account;

    if (q->rc != NGX_DR_PG_OK) {
        ngx_dr_account_clear(ctx);
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        ngx_dr_account_clear(ctx);
        return ngx_dr_account_error(r, NGX_HTTP_CONFLICT,
                                    "email_registered",
                                    "Email already registered");
    }

    ctx->account_id = ngx_atoof((u_char *) PQgetvalue(q->res, 0, 0),
                                PQgetlength(q->res, 0, 0));
    ctx->generation = ngx_atoof((u_char *) PQgetvalue(q->res, 0, 4),
                                PQgetlength(q->res, 0, 4));
    ngx_memcpy(ctx->prefix, ctx->key_prefix, NGX_DR_KEY_PREFIX_LEN + 1);

    /* the key is shown this once: only its HMAC is kept */
    answer = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s#}",
                       "id", (json_int_t) ctx->account_id,
                       "email", PQgetvalue(q->res, 0, 1),
                       "full_name", PQgetvalue(q->res, 0, 2),
                       "created_at", PQgetvalue(q->res, 0, 3),
                       "tier", PQgetvalue(q->res, 0, 6),
                       "api_key", ctx->key.data, (int) ctx->key.len);

    rc = ngx_dr_account_token(r, ctx, NGX_HTTP_CREATED, answer);

    ngx_dr_account_clear(ctx);

    return rc;
}


static ngx_int_t
ngx_dr_account_failed(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    ngx_dr_request_t      *req;
    ngx_dr_account_ctx_t  *ctx;

    req = ngx_dr_request(r);
    ctx = req->account;

    ngx_dr_account_clear(ctx);

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "a failed sign-in from %V", &ctx->address);

    return ngx_dr_account_error(r, NGX_HTTP_UNAUTHORIZED,
                                "invalid_credentials",
                                ctx->op == NGX_DR_ACCOUNT_LOGIN
                                ? NGX_DR_INCORRECT : "Incorrect password");
}


static ngx_int_t
ngx_dr_account_signed_in(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    ngx_dr_request_t      *req;
    ngx_dr_account_ctx_t  *ctx;

    req = ngx_dr_request(r);
    ctx = req->account;

    ngx_dr_account_clear(ctx);

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    return ngx_dr_account_token(r, ctx, NGX_HTTP_OK, json_object());
}


static ngx_int_t
ngx_dr_account_changed(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    ngx_dr_request_t      *req;
    ngx_dr_account_ctx_t  *ctx;

    req = ngx_dr_request(r);
    ctx = req->account;

    ngx_dr_account_clear(ctx);

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        /* another change came first: this one's check was of the past */
        return ngx_dr_account_error(r, NGX_HTTP_CONFLICT, "conflict",
                                    "The password was changed meanwhile: "
                                    "log in again");
    }

    ctx->generation = ngx_atoof((u_char *) PQgetvalue(q->res, 0, 0),
                                PQgetlength(q->res, 0, 0));

    return ngx_dr_account_token(r, ctx, NGX_HTTP_OK, json_object());
}


/* an access token of the account added to answer, which is sent */

static ngx_int_t
ngx_dr_account_token(ngx_http_request_t *r, ngx_dr_account_ctx_t *ctx,
    ngx_uint_t status, json_t *answer)
{
    size_t                n;
    u_char               *token;
    ngx_int_t             rc;
    ngx_dr_main_conf_t   *dmcf;
    ngx_dr_jwt_claims_t   claims;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->prefix[0] == '\0') {
        json_decref(answer);
        return ngx_dr_account_error(r, NGX_HTTP_FORBIDDEN, "no_key",
                                    "The account has no usable API key: "
                                    "ask an operator");
    }

    token = ngx_pnalloc(r->pool, NGX_DR_JWT_MAX);
    if (token == NULL) {
        json_decref(answer);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&claims, sizeof(ngx_dr_jwt_claims_t));
    claims.sub = ctx->account_id;
    claims.gen = ctx->generation;
    claims.iat = ngx_time();
    claims.exp = ngx_time() + dmcf->jwt_ttl;
    ngx_memcpy(claims.kp, ctx->prefix, ngx_strlen(ctx->prefix) + 1);

    n = ngx_dr_jwt_encode(token, dmcf->jwt_secret.value.data,
                          dmcf->jwt_secret.value.len, &claims);
    if (n == 0) {
        json_decref(answer);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(answer, "access_token",
                        json_stringn((char *) token, n));
    json_object_set_new(answer, "token_type", json_string("bearer"));
    json_object_set_new(answer, "expires_in",
                        json_integer((json_int_t) dmcf->jwt_ttl));

    rc = ngx_dr_json_send(r, status, answer);

    ngx_explicit_memzero(token, n);

    return rc;
}


/* GET /api/auth/me: the account of the token (or of the key) */

ngx_int_t
ngx_dr_account_me(ngx_http_request_t *r)
{
    u_char            *p;
    const char        *params[1];
    ngx_dr_request_t  *req;

    req = ngx_dr_request(r);

    if (req == NULL || req->account_id == 0) {
        return ngx_dr_account_error(r, NGX_HTTP_UNAUTHORIZED,
                                    "not_authenticated",
                                    "Not authenticated");
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ngx_sprintf(p, "%L", req->account_id) = '\0';
    params[0] = (const char *) p;

    return ngx_dr_http_query(r, 0, 0, ngx_dr_account_me_sql, 1, params,
                             ngx_dr_account_shown);
}


static ngx_int_t
ngx_dr_account_shown(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    size_t         i;
    json_t        *keys, *days, *day;
    json_int_t     total;
    ngx_dr_request_t  *req;

    req = ngx_dr_request(r);

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_account_error(r, NGX_HTTP_UNAUTHORIZED,
                                    "not_authenticated",
                                    "Not authenticated");
    }

    keys = json_loads(PQgetvalue(q->res, 0, 4), 0, NULL);
    days = json_loads(PQgetvalue(q->res, 0, 5), 0, NULL);

    total = 0;

    json_array_foreach(days, i, day) {
        total += json_integer_value(json_object_get(day, "requests"));
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK,
        json_pack("{s:I, s:s, s:s, s:s, s:s#, s:o, s:{s:I, s:o}}",
                  "id", (json_int_t) ngx_atoof(
                            (u_char *) PQgetvalue(q->res, 0, 0),
                            PQgetlength(q->res, 0, 0)),
                  "email", PQgetvalue(q->res, 0, 1),
                  "full_name", PQgetvalue(q->res, 0, 2),
                  "created_at", PQgetvalue(q->res, 0, 3),
                  "tier", req->tier ? (char *) req->tier->name.data : "",
                  req->tier ? (int) req->tier->name.len : 0,
                  "api_keys", keys ? keys : json_array(),
                  "usage", "requests_30_days", total,
                  "days", days ? days : json_array()));
}


/* nothing of a password stays in memory longer than needed */

static void
ngx_dr_account_clear(ngx_dr_account_ctx_t *ctx)
{
    if (ctx == NULL) {
        return;
    }

    if (ctx->password.data) {
        ngx_explicit_memzero(ctx->password.data, ctx->password.len);
    }

    if (ctx->new_password.data) {
        ngx_explicit_memzero(ctx->new_password.data, ctx->new_password.len);
    }

    if (ctx->key.data) {
        ngx_explicit_memzero(ctx->key.data, ctx->key.len);
    }

    ngx_explicit_memzero(ctx->stored, sizeof(ctx->stored));
    ngx_explicit_memzero(ctx->made, sizeof(ctx->made));
}


/* an error with the original's words in "detail" */

static ngx_int_t
ngx_dr_account_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *detail)
{
    return ngx_dr_json_error(r, status, error, "%s", detail);
}


/* a 429 as the limits answer one: Retry-After and retry_after */

static ngx_int_t
ngx_dr_account_refuse(ngx_http_request_t *r, time_t retry_after,
    const char *detail)
{
    ngx_str_t  value;
    u_char     buf[NGX_TIME_T_LEN];

    static ngx_str_t  retry_key = ngx_string("Retry-After");

    value.data = buf;
    value.len = ngx_sprintf(buf, "%T", retry_after) - buf;

    if (ngx_dr_http_header(r, &retry_key, &value, NULL) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_json_send(r, NGX_HTTP_TOO_MANY_REQUESTS,
                            json_pack("{s:s, s:s, s:s, s:I}",
                                      "error", "too_many_attempts",
                                      "message", detail, "detail", detail,
                                      "retry_after",
                                      (json_int_t) retry_after));
}


/*
 * Domain Runner: the HTTP responder, shared by every part that answers.
 *
 * The request's state (kept across internal redirects) and its id; the
 * one JSON writer and the one error responder: every answer of the
 * module, errors included, leaves through ngx_dr_http_send(), so every
 * answer has the same content type, the same security headers and a
 * correct length; and the one way a request waits for a query.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_validate.h"


#define NGX_DR_JSON_FLAGS  (JSON_COMPACT | JSON_PRESERVE_ORDER \
                            | JSON_REAL_PRECISION(10))




static void ngx_dr_request_cleanup(void *data);
static u_char *ngx_dr_request_log(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static void ngx_dr_http_query_done(ngx_dr_pg_query_t *q);
static ngx_uint_t ngx_dr_http_header_list(ngx_str_t *value);


static ngx_http_log_handler_pt  ngx_dr_request_log_next;

static ngx_str_t  ngx_dr_json_type = ngx_string("application/json");
static ngx_str_t  ngx_dr_json_charset = ngx_string("utf-8");


/* the request's state, found again after an internal redirect */

ngx_dr_request_t *
ngx_dr_request(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_dr_request_t    *req;

    req = ngx_http_get_module_ctx(r->main, ngx_http_dr_module);
    if (req) {
        return req;
    }

    /* an internal redirect clears the contexts, not the pool */

    for (cln = r->main->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_dr_request_cleanup) {
            req = cln->data;
            ngx_http_set_ctx(r->main, req, ngx_http_dr_module);
            return req;
        }
    }

    cln = ngx_pool_cleanup_add(r->main->pool, sizeof(ngx_dr_request_t));
    if (cln == NULL) {
        return NULL;
    }

    req = cln->data;
    ngx_memzero(req, sizeof(ngx_dr_request_t));

    cln->handler = ngx_dr_request_cleanup;
    ngx_http_set_ctx(r->main, req, ngx_http_dr_module);

    /*
     * The error log lines of this request end with its request id; the
     * id is made only when a line is written (or a provider is called),
     * not for every request.
     */

    if (ngx_dr_request_log_next == NULL) {
        ngx_dr_request_log_next = r->main->log_handler;
    }

    if (r->main->log_handler == ngx_dr_request_log_next) {
        r->main->log_handler = ngx_dr_request_log;
    }

    return req;
}


/*
 * Who acts, for the audit trail: the request's key id and its client's
 * address, as two statement parameters.
 */

ngx_int_t
ngx_dr_request_actor(ngx_http_request_t *r, const char **params)
{
    u_char            *p;
    ngx_dr_request_t  *req;

    req = ngx_dr_request(r);

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (req == NULL || p == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_sprintf(p, "%L%Z", req->key_id);
    params[0] = (const char *) p;

    params[1] = (const char *) ngx_dr_cstr(r->pool,
                                           &r->connection->addr_text);

    return params[1] ? NGX_OK : NGX_ERROR;
}


/* the request id ($request_id), made on first use */

ngx_str_t *
ngx_dr_request_id(ngx_http_request_t *r)
{
    ngx_dr_request_t           *req;
    ngx_dr_main_conf_t         *dmcf;
    ngx_http_variable_value_t  *vv;

    req = ngx_http_get_module_ctx(r->main, ngx_http_dr_module);

    if (req == NULL) {
        return NULL;
    }

    if (req->request_id.len == 0) {
        dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
        vv = ngx_http_get_indexed_variable(r->main, dmcf->request_id);

        if (vv == NULL || vv->not_found) {
            return NULL;
        }

        req->request_id.data = vv->data;
        req->request_id.len = vv->len;
    }

    return &req->request_id;
}


static u_char *
ngx_dr_request_log(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char     *p;
    ngx_str_t  *id;

    p = ngx_dr_request_log_next(r, sr, buf, len);

    id = ngx_dr_request_id(r);

    if (id && (size_t) (p - buf) < len) {
        p = ngx_snprintf(p, len - (p - buf), ", request_id: \"%V\"", id);
    }

    return p;
}


static void
ngx_dr_request_cleanup(void *data)
{
    /* a marker: the state lives in the pool and goes with it */
}


/*
 * Serializes json into pool, with a final new line that makes answers
 * pleasant in a terminal.  The reference to json is always consumed.
 */

ngx_int_t
ngx_dr_json_dump(ngx_pool_t *pool, json_t *json, ngx_str_t *out)
{
    size_t   len;
    u_char  *p;

    if (json == NULL) {
        return NGX_ERROR;
    }

    len = json_dumpb(json, NULL, 0, NGX_DR_JSON_FLAGS);

    p = (len == 0) ? NULL : ngx_pnalloc(pool, len + 1);
    if (p == NULL
        || json_dumpb(json, (char *) p, len, NGX_DR_JSON_FLAGS) != len)
    {
        json_decref(json);
        return NGX_ERROR;
    }

    json_decref(json);

    p[len] = '\n';
    out->data = p;
    out->len = len + 1;

    return NGX_OK;
}


/* sends json as the whole answer; returns what finalizes the request */

ngx_int_t
ngx_dr_json_send(ngx_http_request_t *r, ngx_uint_t status, json_t *body)
{
    ngx_str_t  text;

    if (ngx_dr_json_dump(r->pool, body, &text) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "cannot serialize a JSON answer");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_send(r, status, &text, NULL);
}


/*
 * The answer a statement wrote itself, as JSON text in the first column of
 * its one row; NULL without one
 */

json_t *
ngx_dr_json_column(PGresult *res)
{
    if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0)) {
        return NULL;
    }

    return json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0,
                      NULL);
}


/* a query's outcome: 200 with the answer the statement wrote */

ngx_int_t
ngx_dr_http_written(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t  *answer;

    if (q->rc != NGX_DR_PG_OK || PQntuples(q->res) != 1) {
        return ngx_dr_http_unavailable(r, q);
    }

    answer = ngx_dr_json_column(q->res);
    if (answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK, answer);
}


/*
 * The one place answers leave: content type, security and CORS headers,
 * and, for cacheable answers, a strong ETag (with which nginx's
 * not_modified filter answers If-None-Match with 304), Cache-Control and,
 * for answers served from the cache, Age.
 */

ngx_int_t
ngx_dr_http_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *body,
    ngx_dr_http_cache_t *cache)
{
    u_char             *p;
    ngx_str_t           value, *origin;
    ngx_dr_loc_conf_t  *dlcf;

    static ngx_str_t  nosniff_key = ngx_string("X-Content-Type-Options");
    static ngx_str_t  nosniff = ngx_string("nosniff");
    static ngx_str_t  frame_key = ngx_string("X-Frame-Options");
    static ngx_str_t  frame = ngx_string("DENY");
    static ngx_str_t  etag_key = ngx_string("ETag");
    static ngx_str_t  cc_key = ngx_string("Cache-Control");
    static ngx_str_t  no_store = ngx_string("no-store");
    static ngx_str_t  age_key = ngx_string("Age");
    static ngx_str_t  acao_key = ngx_string("Access-Control-Allow-Origin");
    static ngx_str_t  vary_key = ngx_string("Vary");
    static ngx_str_t  vary = ngx_string("Origin");
    static ngx_str_t  expose_key =
                             ngx_string("Access-Control-Expose-Headers");
    static ngx_str_t  expose = ngx_string("ETag, Age, RateLimit, "
                             "RateLimit-Policy, X-RateLimit-Limit, "
                             "X-RateLimit-Remaining, X-RateLimit-Reset, "
                             "Retry-After");

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_dr_json_type;
    r->headers_out.content_type_len = ngx_dr_json_type.len;
    r->headers_out.charset = ngx_dr_json_charset;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    if (ngx_dr_http_header(r, &nosniff_key, &nosniff, NULL) != NGX_OK
        || ngx_dr_http_header(r, &frame_key, &frame, NULL) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);
    origin = ngx_dr_http_cors_origin(r);

    if (origin
        && (ngx_dr_http_header(r, &acao_key, origin, NULL) != NGX_OK
            || ngx_dr_http_header(r, &expose_key, &expose, NULL) != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the answer differs by Origin whether this one matched or not */

    if (dlcf->cors && ngx_dr_http_header(r, &vary_key, &vary, NULL) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cache && cache->cacheable && status == NGX_HTTP_OK) {
        value.data = cache->etag;
        value.len = NGX_DR_CACHE_ETAG_LEN;

        if (ngx_dr_http_header(r, &etag_key, &value, &r->headers_out.etag)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_pnalloc(r->pool, sizeof("private, max-age=") + NGX_TIME_T_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /*
         * An answer given for a key is the key holder's: a shared cache
         * (a CDN) must not hand it to clients without one.
         */

        value.data = p;
        value.len = ngx_sprintf(p, "%s, max-age=%T",
                                dlcf->auth == NGX_DR_AUTH_OFF ? "public"
                                                              : "private",
                                cache->max_age)
                    - p;

        if (ngx_dr_http_header(r, &cc_key, &value, NULL) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (cache->aged) {
            p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
            if (p == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            value.data = p;
            value.len = ngx_sprintf(p, "%T", cache->age) - p;

            if (ngx_dr_http_header(r, &age_key, &value, NULL) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

    } else {
        /* errors, keys, health: never kept by a shared cache */
        if (ngx_dr_http_header(r, &cc_key, &no_store, NULL) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_dr_http_output(r, body);
}


/* the header as it is, then the body from memory */

ngx_int_t
ngx_dr_http_output(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.content_length_n = body->len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* the Origin of the request when the location allows it, else NULL */

ngx_str_t *
ngx_dr_http_cors_origin(ngx_http_request_t *r)
{
    ngx_str_t          *allowed, *origin;
    ngx_uint_t          i;
    ngx_table_elt_t    *h;
    ngx_dr_loc_conf_t  *dlcf;

    static ngx_str_t  any = ngx_string("*");

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    if (dlcf->cors == NULL) {
        return NULL;
    }

    if (ngx_dr_http_headers_in(r, "Origin", &h, 1) == 0) {
        return NULL;
    }

    origin = &h->value;

    allowed = dlcf->cors->elts;

    for (i = 0; i < dlcf->cors->nelts; i++) {
        if (allowed[i].len == 1 && allowed[i].data[0] == '*') {
            return &any;
        }

        if (allowed[i].len == origin->len
            && ngx_strncasecmp(allowed[i].data, origin->data, origin->len)
               == 0)
        {
            return origin;
        }
    }

    return NULL;
}


/*
 * Errors are {"error": code, "message": text, "detail": text}: detail is
 * the original API's field, for its clients; code is a stable word a
 * client can branch on, text says what was wrong for a person.
 */

ngx_int_t
ngx_dr_json_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *fmt, ...)
{
    u_char   *p, *last;
    json_t   *body;
    va_list   args;
    u_char    msg[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    last = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    body = json_pack("{s:s, s:s#, s:s#}", "error", error,
                     "message", msg, (int) (last - msg),
                     "detail", msg, (int) (last - msg));

    if (body == NULL) {
        /* the text quoted something that is not UTF-8: keep it readable */

        for (p = msg; p < last; p++) {
            if (*p < 0x20 || *p >= 0x7f) {
                *p = '?';
            }
        }

        body = json_pack("{s:s, s:s#, s:s#}", "error", error,
                         "message", msg, (int) (last - msg),
                         "detail", msg, (int) (last - msg));
    }

    return ngx_dr_json_send(r, status, body);
}


json_t *
ngx_dr_json_timestamp(time_t t)
{
    u_char     *p;
    ngx_tm_t    tm;
    u_char      buf[sizeof("1970-01-01T00:00:00Z")];

    ngx_gmtime(t, &tm);

    p = ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    return json_stringn((char *) buf, p - buf);
}


json_t *
ngx_dr_json_str(ngx_str_t *s)
{
    return json_stringn((char *) s->data, s->len);
}


ngx_int_t
ngx_dr_http_header(ngx_http_request_t *r, ngx_str_t *key, ngx_str_t *value,
    ngx_table_elt_t **elt)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = *key;
    h->value = *value;

    if (elt) {
        *elt = h;
    }

    return NGX_OK;
}


/* a NUL-terminated copy, for libpq */

u_char *
ngx_dr_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    *ngx_cpymem(p, s->data, s->len) = '\0';

    return p;
}


/*
 * The request body in one piece, however it came (several buffers of a
 * chunked or slow body, or a temporary file): NGX_OK, or NGX_DECLINED
 * when it is longer than max, NGX_ERROR on failure.
 */

ngx_int_t
ngx_dr_http_body(ngx_http_request_t *r, size_t max, ngx_str_t *out)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    out->len = 0;
    out->data = NULL;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    if (len > max) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        /* an empty buffer may have no memory: no memcpy() from NULL */
        if (b->last != b->pos) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *p = '\0';
    out->len = len;

    return NGX_OK;
}


/*
 * A CORS preflight: a browser asks, before a cross-origin request, with
 * OPTIONS, Origin and Access-Control-Request-Method, never with a key.
 */

ngx_uint_t
ngx_dr_http_is_preflight(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    return r->method == NGX_HTTP_OPTIONS
           && ngx_dr_http_headers_in(r, "Origin", &h, 1)
           && ngx_dr_http_headers_in(r, "Access-Control-Request-Method", &h,
                                     1);
}


/*
 * The answer to a preflight, without a query: 204 for an origin of
 * dr_cors_origins, allowing the method and the request headers the
 * browser asks for (a list of header names, nothing else), or 403.
 */

ngx_int_t
ngx_dr_http_preflight(ngx_http_request_t *r)
{
    ngx_str_t           *origin, headers, methods;
    ngx_table_elt_t     *h;
    ngx_dr_loc_conf_t   *dlcf;

    static ngx_str_t  acao_key = ngx_string("Access-Control-Allow-Origin");
    static ngx_str_t  acam_key = ngx_string("Access-Control-Allow-Methods");
    static ngx_str_t  api_methods = ngx_string("GET, HEAD, OPTIONS");
    static ngx_str_t  any_methods = ngx_string("GET, HEAD, POST, PUT, "
                                               "PATCH, DELETE, OPTIONS");
    static ngx_str_t  acah_key = ngx_string("Access-Control-Allow-Headers");
    static ngx_str_t  acah = ngx_string("Authorization, X-API-Key, "
                                        "If-None-Match, Content-Type");
    static ngx_str_t  acma_key = ngx_string("Access-Control-Max-Age");
    static ngx_str_t  acma = ngx_string("600");
    static ngx_str_t  vary_key = ngx_string("Vary");
    static ngx_str_t  vary = ngx_string("Origin, Access-Control-Request-"
                                        "Headers");
    static ngx_str_t  allow_key = ngx_string("Allow");

    origin = ngx_dr_http_cors_origin(r);

    if (origin == NULL) {
        return ngx_dr_json_error(r, NGX_HTTP_FORBIDDEN,
                                 "origin_not_allowed",
                                 "cross-origin requests from this origin "
                                 "are not allowed");
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);
    methods = dlcf->api ? api_methods : any_methods;

    headers = acah;

    if (ngx_dr_http_headers_in(r, "Access-Control-Request-Headers", &h, 1)
        && ngx_dr_http_header_list(&h->value))
    {
        headers = h->value;
    }

    if (ngx_dr_http_header(r, &acao_key, origin, NULL) != NGX_OK
        || ngx_dr_http_header(r, &acam_key, &methods, NULL) != NGX_OK
        || ngx_dr_http_header(r, &acah_key, &headers, NULL) != NGX_OK
        || ngx_dr_http_header(r, &acma_key, &acma, NULL) != NGX_OK
        || ngx_dr_http_header(r, &vary_key, &vary, NULL) != NGX_OK
        || ngx_dr_http_header(r, &allow_key, &methods, NULL) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/* a comma-separated list of header names, and nothing else */

static ngx_uint_t
ngx_dr_http_header_list(ngx_str_t *value)
{
    u_char  *p, c;

    if (value->len == 0 || value->len > 1024) {
        return 0;
    }

    for (p = value->data; p < value->data + value->len; p++) {
        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == ','
            || c == ' ')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


/* the request headers named name, at most max of them, in *out; how many */

ngx_uint_t
ngx_dr_http_headers_in(ngx_http_request_t *r, const char *name,
    ngx_table_elt_t **out, ngx_uint_t max)
{
    size_t            len;
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    n = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; n < max; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            out[n++] = &h[i];
        }
    }

    return n;
}


/*
 * Sends the query, keeps the request alive until the outcome arrives, and
 * lets done() write the answer.  A client that goes away ends the request,
 * whose pool cleanup cancels the query.
 */

ngx_int_t
ngx_dr_http_query(ngx_http_request_t *r, ngx_uint_t flags, ngx_msec_t timeout,
    const char *sql, int nparams, const char **params,
    ngx_dr_http_result_pt done)
{
    ngx_dr_request_t   *req;
    ngx_dr_pg_query_t  *q;

    req = ngx_dr_request(r);
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    req->query_done = done;

    q = ngx_dr_pg_query(r->pool, r->connection->log, flags, timeout, sql,
                        nparams, params, ngx_dr_http_query_done, r);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_dr_http_query_done(ngx_dr_pg_query_t *q)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = q->data;
    c = r->connection;

    rc = ngx_dr_request(r)->query_done(r, q);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the answer of any data endpoint whose query could not be served */

ngx_int_t
ngx_dr_http_unavailable(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc == NGX_DR_PG_UNAVAILABLE) {
        return ngx_dr_json_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "database_unavailable",
                                 "the database is unavailable: %V",
                                 &q->error);
    }

    return ngx_dr_json_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             "internal_error",
                             "the database could not answer the query");
}


/* adds a handler of this module to one phase of every request */

ngx_int_t
ngx_dr_http_phase(ngx_conf_t *cf, ngx_http_phases phase,
    ngx_http_handler_pt handler)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[phase].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = handler;

    return NGX_OK;
}


/*
 * a request's body must be a JSON object of the fields listed (names
 * separated by ", ") and no other: NGX_DECLINED when it is, else the
 * client is answered 400 saying which fields there are
 */

ngx_int_t
ngx_dr_http_fields(ngx_http_request_t *r, json_t *body, const char *fields)
{
    size_t       n;
    json_t      *v;
    const char  *key, *p, *e;

    if (!json_is_object(body)) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "a JSON object is needed; its fields are "
                                 "%s", fields);
    }

    json_object_foreach(body, key, v) {
        n = ngx_strlen(key);

        for (p = fields; *p; p = e) {
            while (*p == ',' || *p == ' ') {
                p++;
            }

            for (e = p; *e && *e != ','; e++) { /* void */ }

            if ((size_t) (e - p) == n && ngx_strncmp(p, key, n) == 0) {
                break;
            }
        }

        if (*p == '\0') {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                     "unknown field; the fields are %s",
                                     fields);
        }
    }

    return NGX_DECLINED;
}


/*
 * A domain as the API takes it, in the request's pool and NUL-terminated:
 * NGX_DECLINED; otherwise the client is answered 400 saying why
 */

ngx_int_t
ngx_dr_http_domain(ngx_http_request_t *r, u_char *in, size_t len,
    ngx_str_t *out)
{
    ngx_int_t  rc;

    out->data = ngx_pnalloc(r->pool, len + 1);
    if (out->data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_dr_validate_domain(in, len, out->data, &out->len);
    if (rc != NGX_DR_VALID_OK) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_domain",
                                 "domain: %s", ngx_dr_validate_reason(rc));
    }

    out->data[out->len] = '\0';

    return NGX_DECLINED;
}


/* the "domain" of a request's body, as ngx_dr_http_domain() takes it */

ngx_int_t
ngx_dr_http_body_domain(ngx_http_request_t *r, json_t *body, ngx_str_t *out)
{
    json_t  *v;

    v = json_object_get(body, "domain");

    if (!json_is_string(v)) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "domain: a domain name is needed");
    }

    return ngx_dr_http_domain(r, (u_char *) json_string_value(v),
                              json_string_length(v), out);
}


/*
 * Domain Runner: the one JSON writer and the one error responder.
 *
 * Every answer of the module, errors included, leaves through
 * ngx_dr_json_send(), so every answer has the same content type, the same
 * security headers and a correct length.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_json.h"


#define NGX_DR_JSON_FLAGS  (JSON_COMPACT | JSON_PRESERVE_ORDER \
                            | JSON_REAL_PRECISION(10))


static ngx_int_t ngx_dr_json_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value);


static ngx_str_t  ngx_dr_json_type = ngx_string("application/json");
static ngx_str_t  ngx_dr_json_charset = ngx_string("utf-8");


/*
 * Sends body as the whole answer and returns what the caller hands to
 * ngx_http_finalize_request().  The reference to body is always consumed.
 */

ngx_int_t
ngx_dr_json_send(ngx_http_request_t *r, ngx_uint_t status, json_t *body)
{
    size_t        len;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    static ngx_str_t  nosniff_key = ngx_string("X-Content-Type-Options");
    static ngx_str_t  nosniff = ngx_string("nosniff");
    static ngx_str_t  frame_key = ngx_string("X-Frame-Options");
    static ngx_str_t  frame = ngx_string("DENY");

    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = json_dumpb(body, NULL, 0, NGX_DR_JSON_FLAGS);

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        json_decref(body);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_dumpb(body, (char *) b->pos, len, NGX_DR_JSON_FLAGS) != len) {
        json_decref(body);
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "json_dumpb() wrote an unexpected length");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_decref(body);

    /* a final new line makes the answers pleasant in a terminal */
    b->last = b->pos + len;
    *b->last++ = '\n';
    len++;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_dr_json_type;
    r->headers_out.content_type_len = ngx_dr_json_type.len;
    r->headers_out.charset = ngx_dr_json_charset;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    if (ngx_dr_json_header(r, &nosniff_key, &nosniff) != NGX_OK
        || ngx_dr_json_header(r, &frame_key, &frame) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Errors are {"error": code, "message": text}: code is a stable word a
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

    body = json_pack("{s:s, s:s#}", "error", error,
                     "message", msg, (int) (last - msg));

    if (body == NULL) {
        /* the text quoted something that is not UTF-8: keep it readable */

        for (p = msg; p < last; p++) {
            if (*p < 0x20 || *p >= 0x7f) {
                *p = '?';
            }
        }

        body = json_pack("{s:s, s:s#}", "error", error,
                         "message", msg, (int) (last - msg));
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


static ngx_int_t
ngx_dr_json_header(ngx_http_request_t *r, ngx_str_t *key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = *key;
    h->value = *value;

    return NGX_OK;
}

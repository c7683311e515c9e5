
/*
 * Domain Runner: the public JSON API, its router and its query path.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


typedef struct {
    ngx_str_t                 path;
    ngx_http_handler_pt       handler;
} ngx_dr_api_route_t;


typedef struct {
    ngx_http_request_t       *request;
    ngx_dr_api_result_pt      done;
} ngx_dr_api_ctx_t;


static void ngx_dr_api_query_done(ngx_dr_pg_query_t *q);


static ngx_dr_api_route_t  ngx_dr_api_routes[] = {
    { ngx_string("/healthz"), ngx_dr_health_live },
    { ngx_string("/readyz"), ngx_dr_health_ready },
    { ngx_string("/health"), ngx_dr_health_status },
    { ngx_null_string, NULL }
};


ngx_int_t
ngx_dr_api_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_table_elt_t     *h;
    ngx_dr_api_route_t  *route;

    for (route = ngx_dr_api_routes; route->handler; route++) {
        if (r->uri.len == route->path.len
            && ngx_strncmp(r->uri.data, route->path.data, r->uri.len) == 0)
        {
            break;
        }
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (route->handler == NULL) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no such endpoint");
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "GET, HEAD");

        return ngx_dr_json_error(r, NGX_HTTP_NOT_ALLOWED,
                                 "method_not_allowed",
                                 "%V accepts GET and HEAD only",
                                 &route->path);
    }

    return route->handler(r);
}


/*
 * The one query path of the API: sends the query, keeps the request alive
 * until the outcome arrives, and lets done() write the answer.  A client
 * that goes away ends the request, whose pool cleanup cancels the query.
 */

ngx_int_t
ngx_dr_api_query(ngx_http_request_t *r, ngx_uint_t flags, ngx_msec_t timeout,
    const char *sql, int nparams, const char **params,
    ngx_dr_api_result_pt done)
{
    ngx_dr_api_ctx_t   *ctx;
    ngx_dr_pg_query_t  *q;

    ctx = ngx_palloc(r->pool, sizeof(ngx_dr_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->done = done;

    q = ngx_dr_pg_query(r->pool, r->connection->log, flags, timeout, sql,
                        nparams, params, ngx_dr_api_query_done, ctx);
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
ngx_dr_api_query_done(ngx_dr_pg_query_t *q)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_dr_api_ctx_t    *ctx;
    ngx_http_request_t  *r;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    rc = ctx->done(r, q);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the answer of any data endpoint whose query could not be served */

ngx_int_t
ngx_dr_api_unavailable(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
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

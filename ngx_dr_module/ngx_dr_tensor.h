
/*
 * Domain Runner: the answers of the intelligence endpoints of the public
 * API (tensors, trends, the rich variants), routed by ngx_dr_api.c.
 */


#ifndef _NGX_DR_TENSOR_H_INCLUDED_
#define _NGX_DR_TENSOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include <libpq-fe.h>


/* the API's request context, opaque here */
typedef struct ngx_dr_api_ctx_s  ngx_dr_api_ctx_t;


/* $1: the domain */
extern const char  ngx_dr_tensor_sql[];
extern const char  ngx_dr_tensor_domain_sql[];

/* no parameter */
extern const char  ngx_dr_tensor_stats_sql[];

/* $1: limit, $2: offset, $3: page */
extern const char  ngx_dr_tensor_rankings_sql[];

/* $1: runs, $2: limit */
extern const char  ngx_dr_tensor_degradation_sql[];
extern const char  ngx_dr_tensor_improvement_sql[];


/* GET /api/tensors/{brand}: the figures, composite, insights */
json_t *ngx_dr_tensor_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status);

/* an answer the statement made whole: its first column, or a 404 */
json_t *ngx_dr_tensor_json_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);


#endif /* _NGX_DR_TENSOR_H_INCLUDED_ */

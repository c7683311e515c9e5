
/*
 * Domain Runner: GET /admin/providers.
 *
 * Each provider as configured, its keys masked to their last 4
 * characters (none shown of a key shorter than 16), what each key's
 * buckets hold now, and the state of its circuit breaker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_providers.h"
#include "ngx_dr_breaker.h"
#include "ngx_dr_provider.h"


/* a key shorter than this shows none of its characters */
#define NGX_DR_PROVIDERS_SHOWN_FROM  16


static json_t *ngx_dr_providers_one(ngx_dr_main_conf_t *dmcf,
    ngx_dr_provider_t *pr);
static json_t *ngx_dr_providers_models(ngx_dr_provider_t *pr);
static json_t *ngx_dr_providers_keys(ngx_dr_main_conf_t *dmcf,
    ngx_dr_provider_t *pr);
static json_t *ngx_dr_providers_level(ngx_dr_main_conf_t *dmcf,
    ngx_str_t *bucket, ngx_uint_t full);
static json_t *ngx_dr_providers_breaker(ngx_dr_provider_t *pr);
static json_t *ngx_dr_providers_base(ngx_str_t *base);


ngx_int_t
ngx_dr_providers_handler(ngx_http_request_t *r)
{
    json_t              *list;
    ngx_uint_t           i;
    ngx_dr_provider_t   *pr;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    list = json_array();
    if (list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (dmcf->providers) {
        pr = dmcf->providers->elts;

        for (i = 0; i < dmcf->providers->nelts; i++) {
            json_array_append_new(list, ngx_dr_providers_one(dmcf, &pr[i]));
        }
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:o}", "providers", list));
}


static json_t *
ngx_dr_providers_one(ngx_dr_main_conf_t *dmcf, ngx_dr_provider_t *pr)
{
    json_t  *models, *keys, *breaker;

    models = ngx_dr_providers_models(pr);
    keys = ngx_dr_providers_keys(dmcf, pr);
    breaker = ngx_dr_providers_breaker(pr);

    return json_pack("{s:s#, s:s, s:o, s:o, s:I, s:o, s:I, s:o, s:o}",
                     "name", pr->name.data, (int) pr->name.len,
                     "format", ngx_dr_provider_format_name(pr->format),
                     "base", ngx_dr_providers_base(&pr->base),
                     "models", models ? models : json_null(),
                     "rpm", (json_int_t) pr->rpm,
                     "tpm", pr->tpm ? json_integer(pr->tpm) : json_null(),
                     "concurrency", (json_int_t) pr->concurrency,
                     "keys", keys ? keys : json_null(),
                     "breaker", breaker ? breaker : json_null());
}


static json_t *
ngx_dr_providers_models(ngx_dr_provider_t *pr)
{
    json_t      *models;
    ngx_str_t   *model;
    ngx_uint_t   k;

    models = json_array();
    model = pr->models.elts;

    for (k = 0; models && k < pr->models.nelts; k++) {
        json_array_append_new(models,
            json_stringn((char *) model[k].data, model[k].len));
    }

    return models;
}


static json_t *
ngx_dr_providers_keys(ngx_dr_main_conf_t *dmcf, ngx_dr_provider_t *pr)
{
    json_t                *keys, *o;
    ngx_str_t             *key;
    ngx_uint_t             k;
    ngx_dr_llm_tiers_t     tiers;
    ngx_dr_llm_buckets_t   b;
    char                   masked[16];

    ngx_dr_llm_tiers(pr, &tiers);

    keys = json_array();
    key = pr->keys.elts;

    for (k = 0; keys && k < pr->keys.nelts; k++) {
        if (key[k].len >= NGX_DR_PROVIDERS_SHOWN_FROM) {
            (void) ngx_snprintf((u_char *) masked, sizeof(masked),
                                "****%*s%Z", (size_t) 4,
                                key[k].data + key[k].len - 4);
        } else {
            (void) ngx_cpystrn((u_char *) masked, (u_char *) "****",
                               sizeof(masked));
        }

        o = json_pack("{s:s, s:o, s:o}", "key", masked,
                      "requests_available", json_null(),
                      "tokens_available", json_null());

        if (o && dmcf->limit.shm_zone) {
            ngx_dr_llm_buckets(pr, k, &b);

            json_object_set_new(o, "requests_available",
                ngx_dr_providers_level(dmcf, &b.calls, tiers.calls.burst));

            if (pr->tpm) {
                json_object_set_new(o, "tokens_available",
                    ngx_dr_providers_level(dmcf, &b.tokens,
                                           tiers.tokens.burst));
            }
        }

        json_array_append_new(keys, o);
    }

    return keys;
}


/* what a bucket holds now; one not made yet is full */

static json_t *
ngx_dr_providers_level(ngx_dr_main_conf_t *dmcf, ngx_str_t *bucket,
    ngx_uint_t full)
{
    ngx_int_t  tokens;

    tokens = ngx_dr_limit_tokens(&dmcf->limit, bucket);

    return json_integer(tokens < 0 ? (json_int_t) full : tokens);
}


static json_t *
ngx_dr_providers_breaker(ngx_dr_provider_t *pr)
{
    ngx_dr_breaker_state_t  st;

    ngx_dr_breaker_state(pr, &st);

    return json_pack("{s:s, s:I, s:I}",
                     "state", ngx_dr_breaker_state_name(st.state),
                     "failures_in_a_row", (json_int_t) st.failures,
                     "half_open_in_seconds", (json_int_t) st.half_open_in);
}


/* a base URL with any user information in it hidden */

static json_t *
ngx_dr_providers_base(ngx_str_t *base)
{
    u_char  *host, *at, *end, *p;
    json_t  *v;

    host = ngx_strlcasestrn(base->data, base->data + base->len,
                            (u_char *) "://", 3 - 1);
    host = host ? host + 3 : base->data;

    end = host;
    while (end < base->data + base->len && *end != '/') {
        end++;
    }

    at = NULL;
    for (p = host; p < end; p++) {
        if (*p == '@') {
            at = p;
        }
    }

    if (at == NULL) {
        return json_stringn((char *) base->data, base->len);
    }

    p = ngx_alloc(base->len + 8, ngx_cycle->log);
    if (p == NULL) {
        return json_null();
    }

    end = ngx_cpymem(p, base->data, host - base->data);
    end = ngx_cpymem(end, "****", 4);
    end = ngx_cpymem(end, at, base->data + base->len - at);

    v = json_stringn((char *) p, end - p);
    ngx_free(p);

    return v;
}

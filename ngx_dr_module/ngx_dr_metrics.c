
/*
 * Domain Runner: the Prometheus exposition of the counters.
 *
 * Rendered by whichever worker the scrape reaches, from the counters in
 * shared memory (ngx_dr_counters.c), so the figures are the sum over all
 * workers and survive a reload.  The scrape never queries the database:
 * the queue's and the spend budgets' figures are refreshed by worker 0 in
 * the background (ngx_dr_queue.c, ngx_dr_budget.c).  The body is sized
 * first, then written.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_http.h"
#include "ngx_dr_metrics.h"
#include "ngx_dr_llm.h"
#include "ngx_dr_breaker.h"


#define NGX_DR_METRICS_SIZE  (256 * 1024)


static ngx_int_t ngx_dr_metrics_render(ngx_http_request_t *r);
static u_char *ngx_dr_metrics_http(u_char *p, u_char *last,
    ngx_dr_counters_t *m);
static u_char *ngx_dr_metrics_keys(u_char *p, u_char *last,
    ngx_dr_counters_t *m, ngx_dr_main_conf_t *dmcf);
static u_char *ngx_dr_metrics_cache(u_char *p, u_char *last,
    ngx_dr_main_conf_t *dmcf);
static u_char *ngx_dr_metrics_pg(u_char *p, u_char *last,
    ngx_dr_counters_t *m);
static u_char *ngx_dr_metrics_queue(u_char *p, u_char *last,
    ngx_dr_counters_t *m);
static u_char *ngx_dr_metrics_budgets(ngx_http_request_t *r, u_char *p,
    u_char *last);
static u_char *ngx_dr_metrics_histogram(u_char *p, u_char *last,
    const char *name, const char *label, ngx_str_t *value,
    ngx_atomic_t *buckets, ngx_atomic_t sum_us);
static u_char *ngx_dr_metrics_providers(u_char *p, u_char *last,
    ngx_dr_counters_t *m, ngx_dr_main_conf_t *dmcf);
static ngx_int_t ngx_dr_metrics_send(ngx_http_request_t *r, u_char *start,
    u_char *end);


static const char  *ngx_dr_metrics_classes[NGX_DR_M_CLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx"
};

static const char  *ngx_dr_metrics_auth_text[NGX_DR_M_AUTH_OUTCOMES] = {
    "ok", "missing", "invalid", "expired", "revoked", "unavailable",
    "anonymous"
};

static const char  *ngx_dr_metrics_limit_text[NGX_DR_M_LIMIT_DECISIONS] = {
    "", "passed", "rejected", "dry_run"
};

static const char  *ngx_dr_metrics_pg_text[NGX_DR_M_PG_OUTCOMES] = {
    "ok", "unavailable", "failed"
};

static const char  *ngx_dr_metrics_jobs_text[NGX_DR_JOB_STATES] = {
    "queued", "leased", "done", "failed", "dead"
};


/* dr_metrics: the location that answers scrapes */

char *
ngx_dr_metrics_handler_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_dr_metrics_render;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_dr_metrics_render(ngx_http_request_t *r)
{
    u_char              *p, *last, *start;
    ngx_int_t            rc;
    ngx_dr_counters_t   *m;
    ngx_dr_main_conf_t  *dmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_dr_counters;
    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (m == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* sized first: every series of every family, at most */

    start = ngx_pnalloc(r->pool, NGX_DR_METRICS_SIZE);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = start + NGX_DR_METRICS_SIZE;

    p = ngx_dr_metrics_http(start, last, m);
    p = ngx_dr_metrics_keys(p, last, m, dmcf);
    p = ngx_dr_metrics_cache(p, last, dmcf);
    p = ngx_dr_metrics_pg(p, last, m);
    p = ngx_dr_metrics_providers(p, last, m, dmcf);
    p = ngx_dr_metrics_queue(p, last, m);
    p = ngx_dr_metrics_budgets(r, p, last);

    if (p == last) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "the metrics do not fit in %uz bytes",
                      (size_t) NGX_DR_METRICS_SIZE);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_metrics_send(r, start, p);
}


static u_char *
ngx_dr_metrics_http(u_char *p, u_char *last, ngx_dr_counters_t *m)
{
    ngx_uint_t  g, c, any;

    p = ngx_slprintf(p, last,
            "# HELP dr_http_requests_total Requests answered by the module, "
            "by endpoint group and status class.\n"
            "# TYPE dr_http_requests_total counter\n");

    for (g = 0; g < NGX_DR_M_GROUPS; g++) {
        for (c = 0; c < NGX_DR_M_CLASSES; c++) {
            if (m->requests[g][c]) {
                p = ngx_slprintf(p, last,
                        "dr_http_requests_total{group=\"%V\",class=\"%s\"} "
                        "%uA\n", &ngx_dr_counters_groups[g],
                        ngx_dr_metrics_classes[c], m->requests[g][c]);
            }
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_http_request_duration_seconds Time to answer, by "
            "endpoint group.\n"
            "# TYPE dr_http_request_duration_seconds histogram\n");

    for (g = 0; g < NGX_DR_M_GROUPS; g++) {
        for (any = 0, c = 0; c < NGX_DR_M_BUCKETS; c++) {
            any += m->latency[g][c];
        }

        if (any) {
            p = ngx_dr_metrics_histogram(p, last,
                                         "dr_http_request_duration_seconds",
                                         "group", &ngx_dr_counters_groups[g],
                                         m->latency[g], m->latency_us[g]);
        }
    }

    return p;
}


/* key checks and rate-limit decisions, by tier */

static u_char *
ngx_dr_metrics_keys(u_char *p, u_char *last, ngx_dr_counters_t *m,
    ngx_dr_main_conf_t *dmcf)
{
    ngx_str_t             *tname, none = ngx_string("none");
    ngx_uint_t             t, o, ntiers;
    ngx_dr_tier_t         *tiers;
    ngx_dr_limit_stats_t   st;

    tiers = dmcf->limit.tiers ? dmcf->limit.tiers->elts : NULL;
    ntiers = tiers ? ngx_min(dmcf->limit.tiers->nelts, NGX_DR_M_TIERS) : 0;

    p = ngx_slprintf(p, last,
            "# HELP dr_auth_total API key checks, by tier and outcome.\n"
            "# TYPE dr_auth_total counter\n");

    for (t = 0; t <= NGX_DR_M_TIERS; t++) {
        tname = (t < ntiers) ? &tiers[t].name : &none;

        for (o = 0; o < NGX_DR_M_AUTH_OUTCOMES; o++) {
            if (m->auth[t][o]) {
                p = ngx_slprintf(p, last,
                        "dr_auth_total{tier=\"%V\",outcome=\"%s\"} %uA\n",
                        tname, ngx_dr_metrics_auth_text[o], m->auth[t][o]);
            }
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_limit_decisions_total Rate-limit decisions, by "
            "tier.\n"
            "# TYPE dr_limit_decisions_total counter\n");

    for (t = 0; t < ntiers; t++) {
        for (o = 1; o < NGX_DR_M_LIMIT_DECISIONS; o++) {
            if (m->limit[t][o]) {
                p = ngx_slprintf(p, last,
                        "dr_limit_decisions_total{tier=\"%V\","
                        "decision=\"%s\"} %uA\n", &tiers[t].name,
                        ngx_dr_metrics_limit_text[o], m->limit[t][o]);
            }
        }
    }

    if (ngx_dr_limit_stats(&dmcf->limit, &st) != NGX_OK) {
        return p;
    }

    return ngx_slprintf(p, last,
            "# HELP dr_limit_zone_buckets Buckets in the limit zone, and "
            "those of anonymous clients.\n"
            "# TYPE dr_limit_zone_buckets gauge\n"
            "dr_limit_zone_buckets{zone=\"%V\",kind=\"all\"} %ui\n"
            "dr_limit_zone_buckets{zone=\"%V\",kind=\"anonymous\"} %ui\n"
            "# HELP dr_limit_zone_evictions_total Full, flushed buckets "
            "freed to make room.\n"
            "# TYPE dr_limit_zone_evictions_total counter\n"
            "dr_limit_zone_evictions_total{zone=\"%V\"} %uA\n"
            "# HELP dr_limit_zone_refused_total New clients refused because "
            "no bucket could go without forgiving its client.\n"
            "# TYPE dr_limit_zone_refused_total counter\n"
            "dr_limit_zone_refused_total{zone=\"%V\"} %uA\n",
            &st.zone, st.buckets, &st.zone, st.anonymous,
            &st.zone, st.evictions, &st.zone, st.refused);
}


static u_char *
ngx_dr_metrics_cache(u_char *p, u_char *last, ngx_dr_main_conf_t *dmcf)
{
    ngx_atomic_uint_t  hits, misses, evictions, entries;

    if (ngx_dr_cache_stats(&dmcf->cache, &hits, &misses, &evictions,
                           &entries)
        != NGX_OK)
    {
        return p;
    }

    return ngx_slprintf(p, last,
            "# HELP dr_cache_hits_total Answers served from the cache."
            "\n# TYPE dr_cache_hits_total counter\n"
            "dr_cache_hits_total %uA\n"
            "# HELP dr_cache_misses_total Answers not (or no longer "
            "fresh) in the cache.\n"
            "# TYPE dr_cache_misses_total counter\n"
            "dr_cache_misses_total %uA\n"
            "# HELP dr_cache_evictions_total Entries dropped to make "
            "room.\n"
            "# TYPE dr_cache_evictions_total counter\n"
            "dr_cache_evictions_total %uA\n"
            "# HELP dr_cache_entries Entries in the cache.\n"
            "# TYPE dr_cache_entries gauge\n"
            "dr_cache_entries %uA\n",
            hits, misses, evictions, entries);
}


/* the PostgreSQL pools of all workers, and the provider calls under way */

static u_char *
ngx_dr_metrics_pg(u_char *p, u_char *last, ngx_dr_counters_t *m)
{
    ngx_uint_t         i, o;
    ngx_atomic_uint_t  open, busy, waiting, in_flight, in_flight_max;

    open = busy = waiting = in_flight = in_flight_max = 0;

    for (i = 0; i < NGX_DR_M_WORKERS; i++) {
        open += m->pg_open[i];
        busy += m->pg_busy[i];
        waiting += m->pg_waiting[i];
        in_flight += m->calls_in_flight[i];
        in_flight_max = ngx_max(in_flight_max, m->calls_in_flight_max[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_pg_connections PostgreSQL connections of all "
            "workers, by state.\n"
            "# TYPE dr_pg_connections gauge\n"
            "dr_pg_connections{state=\"open\"} %uA\n"
            "dr_pg_connections{state=\"busy\"} %uA\n"
            "# HELP dr_pg_waiting_queries Queries waiting for a "
            "connection.\n"
            "# TYPE dr_pg_waiting_queries gauge\n"
            "dr_pg_waiting_queries %uA\n"
            "# HELP dr_pg_connect_errors_total Failed connection attempts."
            "\n# TYPE dr_pg_connect_errors_total counter\n"
            "dr_pg_connect_errors_total %uA\n"
            "# HELP dr_pg_queries_total Queries, by outcome.\n"
            "# TYPE dr_pg_queries_total counter\n",
            open, busy, waiting, m->pg_connect_errors);

    for (o = 0; o < NGX_DR_M_PG_OUTCOMES; o++) {
        p = ngx_slprintf(p, last,
                         "dr_pg_queries_total{outcome=\"%s\"} %uA\n",
                         ngx_dr_metrics_pg_text[o], m->pg_queries[o]);
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_calls_in_flight Provider calls under way "
            "in all workers.\n"
            "# TYPE dr_provider_calls_in_flight gauge\n"
            "dr_provider_calls_in_flight %uA\n"
            "# HELP dr_provider_calls_in_flight_max The most provider calls "
            "one worker has had under way at once.\n"
            "# TYPE dr_provider_calls_in_flight_max gauge\n"
            "dr_provider_calls_in_flight_max %uA\n",
            in_flight, in_flight_max);

    p = ngx_slprintf(p, last,
            "# HELP dr_pg_query_duration_seconds Time from sending a query "
            "(or queueing it) to its outcome.\n"
            "# TYPE dr_pg_query_duration_seconds histogram\n");

    return ngx_dr_metrics_histogram(p, last, "dr_pg_query_duration_seconds",
                                    NULL, NULL, m->pg_latency,
                                    m->pg_latency_us);
}


static u_char *
ngx_dr_metrics_queue(u_char *p, u_char *last, ngx_dr_counters_t *m)
{
    ngx_uint_t  o;

    if (!m->queue_known) {
        return p;
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_jobs Crawl jobs, by status (refreshed every "
            "15 s).\n"
            "# TYPE dr_jobs gauge\n");

    for (o = 0; o < NGX_DR_JOB_STATES; o++) {
        p = ngx_slprintf(p, last, "dr_jobs{status=\"%s\"} %uA\n",
                         ngx_dr_metrics_jobs_text[o], m->jobs[o]);
    }

    return ngx_slprintf(p, last,
            "# HELP dr_runs_in_progress Crawl runs queued or running.\n"
            "# TYPE dr_runs_in_progress gauge\n"
            "dr_runs_in_progress %uA\n", m->runs_running);
}


/*
 * The spend budgets in their current windows (refreshed every 5 s): the
 * families are always declared, the series once a budget exists.
 */

static u_char *
ngx_dr_metrics_budgets(ngx_http_request_t *r, u_char *p, u_char *last)
{
    uint64_t                   v;
    ngx_int_t                  n, i, f;
    ngx_dr_counters_budget_t  *b;

    static struct {
        const char  *name;
        const char  *help;
        size_t       offset;
    }  families[] = {
        { "dr_budget_limit_dollars",
          "The spend budgets, by scope and period.",
          offsetof(ngx_dr_counters_budget_t, limit) },
        { "dr_budget_spent_dollars",
          "What the calls of a budget's current period cost (refreshed "
          "every 5 s).",
          offsetof(ngx_dr_counters_budget_t, spent) },
        { "dr_budget_reserved_dollars",
          "What the calls under way hold of a budget: at most what they "
          "could cost.",
          offsetof(ngx_dr_counters_budget_t, reserved) }
    };

    b = ngx_palloc(r->pool, NGX_DR_M_BUDGETS
                            * sizeof(ngx_dr_counters_budget_t));
    n = b ? ngx_dr_counters_budgets_get(b) : -1;

    for (f = 0; f < 3; f++) {
        p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s gauge\n",
                         families[f].name, families[f].help,
                         families[f].name);

        for (i = 0; i < n; i++) {
            v = *(uint64_t *) ((u_char *) &b[i] + families[f].offset);

            p = ngx_slprintf(p, last,
                             "%s{scope=\"%s\",period=\"%s\"} %uL.%06uL\n",
                             families[f].name, b[i].scope, b[i].period,
                             v / 1000000, v % 1000000);
        }
    }

    return p;
}


static ngx_int_t
ngx_dr_metrics_send(ngx_http_request_t *r, u_char *start, u_char *end)
{
    ngx_str_t  body;

    body.data = start;
    body.len = end - start;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    return ngx_dr_http_output(r, &body);
}


static const char  *ngx_dr_metrics_call_text[NGX_DR_M_CALL_OUTCOMES] = {
    "ok", "429", "5xx", "4xx", "timeout", "error", "bad_answer",
    "breaker_open"
};



static u_char *
ngx_dr_metrics_providers(u_char *p, u_char *last, ngx_dr_counters_t *m,
    ngx_dr_main_conf_t *dmcf)
{
    ngx_int_t                tokens;
    ngx_str_t               *models;
    ngx_uint_t               i, j, o, n, b;
    ngx_atomic_uint_t        cost;
    ngx_dr_provider_t       *pr;
    ngx_dr_llm_buckets_t     buckets;
    ngx_dr_breaker_state_t   st;

    if (dmcf->providers == NULL) {
        return p;
    }

    pr = dmcf->providers->elts;
    n = ngx_min(dmcf->providers->nelts, NGX_DR_M_PROVIDERS);

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_calls_total Calls to the LLM providers, by "
            "model and outcome.\n"
            "# TYPE dr_provider_calls_total counter\n");

    for (i = 0; i < n; i++) {
        models = pr[i].models.elts;

        for (j = 0; j < ngx_min(pr[i].models.nelts, NGX_DR_M_MODELS); j++) {
            for (o = 0; o < NGX_DR_M_CALL_OUTCOMES; o++) {
                if (m->calls[i][j][o]) {
                    p = ngx_slprintf(p, last,
                            "dr_provider_calls_total{provider=\"%V\","
                            "model=\"%V\",outcome=\"%s\"} %uA\n",
                            &pr[i].name, &models[j],
                            ngx_dr_metrics_call_text[o], m->calls[i][j][o]);
                }
            }
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_call_duration_seconds Time of a provider "
            "call.\n"
            "# TYPE dr_provider_call_duration_seconds histogram\n");

    for (i = 0; i < n; i++) {
        p = ngx_dr_metrics_histogram(p, last,
                                     "dr_provider_call_duration_seconds",
                                     "provider", &pr[i].name,
                                     m->call_latency[i],
                                     m->call_latency_us[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_tokens_total Tokens sent and received.\n"
            "# TYPE dr_provider_tokens_total counter\n");

    for (i = 0; i < n; i++) {
        p = ngx_slprintf(p, last,
                "dr_provider_tokens_total{provider=\"%V\","
                "direction=\"in\"} %uA\n"
                "dr_provider_tokens_total{provider=\"%V\","
                "direction=\"out\"} %uA\n",
                &pr[i].name, m->tokens_in[i], &pr[i].name,
                m->tokens_out[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_cost_dollars_total What the calls cost, "
            "from the models' prices.\n"
            "# TYPE dr_provider_cost_dollars_total counter\n");

    for (i = 0; i < n; i++) {
        cost = m->cost_micro[i];
        p = ngx_slprintf(p, last,
                "dr_provider_cost_dollars_total{provider=\"%V\"} "
                "%uA.%06uA\n", &pr[i].name, cost / 1000000,
                cost % 1000000);
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_breaker The circuit breaker of each "
            "provider: 1 for its state.\n"
            "# TYPE dr_provider_breaker gauge\n");

    for (i = 0; i < n; i++) {
        ngx_dr_breaker_state(&pr[i], &st);

        for (b = 0; b < NGX_DR_BREAKER_STATES; b++) {
            p = ngx_slprintf(p, last,
                    "dr_provider_breaker{provider=\"%V\",state=\"%s\"} "
                    "%d\n", &pr[i].name, ngx_dr_breaker_state_name(b),
                    st.state == b);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_bucket_tokens Tokens available in the "
            "bucket of each provider key (masked).\n"
            "# TYPE dr_provider_bucket_tokens gauge\n");

    for (i = 0; i < n; i++) {
        for (o = 0; o < pr[i].keys.nelts; o++) {
            ngx_dr_llm_buckets(&pr[i], o, &buckets);

            tokens = ngx_dr_limit_tokens(&dmcf->limit, &buckets.calls);
            if (tokens < 0) {
                continue;
            }

            p = ngx_slprintf(p, last,
                    "dr_provider_bucket_tokens{provider=\"%V\",key=\"%ui\"}"
                    " %i\n", &pr[i].name, o, tokens);
        }
    }

    return p;
}


static u_char *
ngx_dr_metrics_histogram(u_char *p, u_char *last, const char *name,
    const char *label, ngx_str_t *value, ngx_atomic_t *buckets,
    ngx_atomic_t sum_us)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  total;

    total = 0;

    for (i = 0; i < NGX_DR_M_BUCKETS; i++) {
        total += buckets[i];

        if (label) {
            p = ngx_slprintf(p, last, "%s_bucket{%s=\"%V\",le=\"%s\"} %uA\n",
                             name, label, value, ngx_dr_counters_le[i],
                             total);

        } else {
            p = ngx_slprintf(p, last, "%s_bucket{le=\"%s\"} %uA\n", name,
                             ngx_dr_counters_le[i], total);
        }
    }

    if (label) {
        return ngx_slprintf(p, last,
                            "%s_sum{%s=\"%V\"} %uA.%06uA\n"
                            "%s_count{%s=\"%V\"} %uA\n",
                            name, label, value, sum_us / 1000000,
                            sum_us % 1000000, name, label, value, total);
    }

    return ngx_slprintf(p, last, "%s_sum %uA.%06uA\n%s_count %uA\n",
                        name, sum_us / 1000000, sum_us % 1000000, name,
                        total);
}

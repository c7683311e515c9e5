
/*
 * Domain Runner: liveness, readiness, health and metrics.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


/* a load balancer needs its answer within a second, whatever the pool */
#define NGX_DR_READY_TIMEOUT  1000


static ngx_int_t ngx_dr_health_ready_done(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_health_status_done(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static json_t *ngx_dr_health_int(PGresult *res, int col);


static const char  ngx_dr_health_sql[] =
    "SELECT"
    " (SELECT count(*) FROM domains WHERE active),"
    " (SELECT count(DISTINCT r.domain_id) FROM responses r"
    "   JOIN domains d ON d.id = r.domain_id AND d.active"
    "   WHERE r.captured_at > now() - interval '24 hours'),"
    " (SELECT count(*) FROM latest_domain_scores"
    "   WHERE risk_level IN ('high', 'critical')),"
    " (SELECT coalesce(sum(cardinality(alerts)), 0)"
    "   FROM latest_domain_scores)";


/* liveness: the worker answers; no I/O at all */

ngx_int_t
ngx_dr_health_live(ngx_http_request_t *r)
{
    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:s, s:s}", "status", "alive",
                                      "version", NGX_DR_VERSION));
}


/* readiness: a real round trip to the primary */

ngx_int_t
ngx_dr_health_ready(ngx_http_request_t *r)
{
    /* ahead of the queue: a busy pool is no reason to be taken out */
    return ngx_dr_api_query(r, NGX_DR_PG_URGENT, NGX_DR_READY_TIMEOUT,
                            "SELECT 1", 0, NULL, ngx_dr_health_ready_done);
}


static ngx_int_t
ngx_dr_health_ready_done(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t              *body, *reason, *replicas, *open;
    ngx_str_t            name;
    ngx_uint_t           i, n, up, usable;
    ngx_dr_counters_t   *m;
    ngx_dr_provider_t   *pr;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    m = ngx_dr_counters;

    if (q->rc == NGX_DR_PG_OK) {
        body = json_pack("{s:s, s:s}", "status", "ready", "database", "ok");

    } else {
        reason = ngx_dr_json_str(&q->error);
        if (reason == NULL) {
            reason = json_string("the database did not answer");
        }

        body = json_pack("{s:s, s:s, s:s, s:o}",
                         "status", "not_ready",
                         "database", "unavailable",
                         "error", "database_unavailable",
                         "message", reason);
    }

    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the parts: replicas, providers, queue */

    n = ngx_dr_pg_nreplicas_get();

    if (n) {
        replicas = json_array();

        for (i = 0; i < n; i++) {
            up = ngx_dr_pg_replica_up(i, &name);
            json_array_append_new(replicas,
                json_pack("{s:o, s:s}", "name", ngx_dr_json_str(&name),
                          "status", up ? "up" : "down"));
        }

        json_object_set_new(body, "replicas", replicas);
    }

    if (dmcf->providers) {
        pr = dmcf->providers->elts;
        open = json_array();
        usable = 0;

        for (i = 0; i < dmcf->providers->nelts; i++) {
            if (m && i < NGX_DR_M_PROVIDERS
                && m->breaker[i] == NGX_DR_BREAKER_OPEN)
            {
                json_array_append_new(open, ngx_dr_json_str(&pr[i].name));

            } else {
                usable++;
            }
        }

        json_object_set_new(body, "providers",
            json_pack("{s:i, s:i, s:o}",
                      "configured", (int) dmcf->providers->nelts,
                      "usable", (int) usable, "open_breakers", open));

        if (usable == 0 && q->rc == NGX_DR_PG_OK) {
            json_object_set_new(body, "status", json_string("not_ready"));
            json_object_set_new(body, "error", json_string("no_provider"));
            json_object_set_new(body, "message",
                json_string("every provider's circuit breaker is open"));
            return ngx_dr_json_send(r, NGX_HTTP_SERVICE_UNAVAILABLE, body);
        }
    }

    if (m && m->queue_known) {
        json_object_set_new(body, "queue",
            json_pack("{s:I, s:I, s:I, s:I}",
                      "queued", (json_int_t) m->jobs[0],
                      "leased", (json_int_t) m->jobs[1],
                      "failed", (json_int_t) m->jobs[3],
                      "dead", (json_int_t) m->jobs[4]));
    }

    return ngx_dr_json_send(r, q->rc == NGX_DR_PG_OK
                               ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE,
                            body);
}


/* health: the original API's summary of what is monitored */

ngx_int_t
ngx_dr_health_status(ngx_http_request_t *r)
{
    return ngx_dr_api_query(r, NGX_DR_PG_READ, 0, ngx_dr_health_sql, 0, NULL,
                            ngx_dr_health_status_done);
}


static ngx_int_t
ngx_dr_health_status_done(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t  *stats;

    if (q->rc != NGX_DR_PG_OK || PQntuples(q->res) != 1) {
        return ngx_dr_json_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                json_pack("{s:s, s:s, s:o, s:n}",
                                          "status", "degraded",
                                          "database", "unavailable",
                                          "timestamp",
                                          ngx_dr_json_timestamp(ngx_time()),
                                          "monitoring_stats"));
    }

    stats = json_pack("{s:o, s:o, s:o, s:o}",
                      "domains_monitored", ngx_dr_health_int(q->res, 0),
                      "fresh_24h", ngx_dr_health_int(q->res, 1),
                      "high_risk", ngx_dr_health_int(q->res, 2),
                      "active_alerts", ngx_dr_health_int(q->res, 3));

    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:s, s:s, s:o, s:o}",
                                      "status", "healthy",
                                      "database", "connected",
                                      "timestamp",
                                      ngx_dr_json_timestamp(ngx_time()),
                                      "monitoring_stats", stats));
}


static json_t *
ngx_dr_health_int(PGresult *res, int col)
{
    return json_integer(ngx_atoof((u_char *) PQgetvalue(res, 0, col),
                                  PQgetlength(res, 0, col)));
}


/*
 * Metrics: counters and histograms in one shared zone, added to with
 * atomic operations (no lock on any request's path), and rendered as
 * Prometheus text by whichever worker the scrape reaches, so they are the
 * sum over all workers and survive a reload.  The scrape never queries
 * the database: the queue's figures are refreshed by worker 0 in the
 * background.
 */


#define NGX_DR_METRICS_VERSION   4
#define NGX_DR_METRICS_QUEUE     15000


static ngx_int_t ngx_dr_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_dr_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_dr_metrics_render(ngx_http_request_t *r);
static u_char *ngx_dr_metrics_histogram(u_char *p, u_char *last,
    const char *name, const char *label, ngx_str_t *value,
    ngx_atomic_t *buckets, ngx_atomic_t sum_us);
static u_char *ngx_dr_metrics_providers(ngx_http_request_t *r, u_char *p,
    u_char *last, ngx_dr_counters_t *m, ngx_dr_main_conf_t *dmcf);
static void ngx_dr_metrics_queue(ngx_event_t *ev);
static void ngx_dr_metrics_queued(ngx_dr_pg_query_t *q);


ngx_dr_counters_t  *ngx_dr_counters;

ngx_str_t  ngx_dr_metrics_groups[] = {
    ngx_string("health"), ngx_string("stats"), ngx_string("rankings"),
    ngx_string("public"), ngx_string("competitive"), ngx_string("ticker"),
    ngx_string("categories"), ngx_string("shadows"),
    ngx_string("fire_alarm"), ngx_string("drift"), ngx_string("consensus"),
    ngx_string("volatility"), ngx_string("time_series"),
    ngx_string("providers"), ngx_string("openapi"), ngx_string("admin"),
    ngx_string("other")
};

static ngx_msec_t  ngx_dr_metrics_le[NGX_DR_M_BUCKETS - 1] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000
};

static const char  *ngx_dr_metrics_le_text[NGX_DR_M_BUCKETS] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "10", "+Inf"
};

static const char  *ngx_dr_metrics_auth_text[NGX_DR_M_AUTH_OUTCOMES] = {
    "ok", "missing", "invalid", "expired", "revoked", "unavailable",
    "anonymous"
};

static const char  *ngx_dr_metrics_limit_text[4] = {
    "", "passed", "rejected", "dry_run"
};

static const char  *ngx_dr_metrics_pg_text[NGX_DR_M_PG_OUTCOMES] = {
    "ok", "unavailable", "failed"
};

static const char  *ngx_dr_metrics_jobs_text[5] = {
    "queued", "leased", "done", "failed", "dead"
};

static ngx_shm_zone_t  *ngx_dr_metrics_shm;
static ngx_array_t     *ngx_dr_metrics_tiers;
static ngx_event_t      ngx_dr_metrics_queue_event;


ngx_int_t
ngx_dr_metrics_zone(ngx_conf_t *cf)
{
    ngx_str_t  name = ngx_string("dr_metrics");

    ngx_dr_metrics_shm = ngx_shared_memory_add(cf, &name,
                             ngx_align(sizeof(ngx_dr_counters_t)
                                       + 8 * ngx_pagesize, ngx_pagesize),
                             &ngx_http_dr_module);
    if (ngx_dr_metrics_shm == NULL) {
        return NGX_ERROR;
    }

    ngx_dr_metrics_shm->init = ngx_dr_metrics_init_zone;
    ngx_dr_metrics_shm->data = ngx_dr_metrics_shm;

    return NGX_OK;
}


static ngx_int_t
ngx_dr_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t    *shpool;
    ngx_dr_counters_t  *counters;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {
        /* a reload: the counters go on */
        counters = shpool->data;

        if (counters->version != NGX_DR_METRICS_VERSION) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "the metrics zone was made by another version "
                          "of the module: restart nginx");
            return NGX_ERROR;
        }

        ngx_dr_counters = counters;
        return NGX_OK;
    }

    counters = ngx_slab_calloc(shpool, sizeof(ngx_dr_counters_t));
    if (counters == NULL) {
        return NGX_ERROR;
    }

    counters->version = NGX_DR_METRICS_VERSION;
    shpool->data = counters;
    ngx_dr_counters = counters;

    return NGX_OK;
}


ngx_int_t
ngx_dr_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_dr_metrics_log;

    return NGX_OK;
}


ngx_int_t
ngx_dr_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);
    if (dmcf == NULL) {
        return NGX_OK;
    }

    ngx_dr_metrics_tiers = dmcf->limit.tiers;

    if (ngx_worker != 0 || !ngx_dr_pg_configured()) {
        return NGX_OK;
    }

    ngx_dr_metrics_queue_event.handler = ngx_dr_metrics_queue;
    ngx_dr_metrics_queue_event.log = cycle->log;
    ngx_dr_metrics_queue_event.cancelable = 1;
    ngx_add_timer(&ngx_dr_metrics_queue_event, 1000);

    return NGX_OK;
}


ngx_uint_t
ngx_dr_metrics_bucket(ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_DR_M_BUCKETS - 1; i++) {
        if (ms <= ngx_dr_metrics_le[i]) {
            return i;
        }
    }

    return NGX_DR_M_BUCKETS - 1;
}


/* the requests the module answered, when they are done */

static ngx_int_t
ngx_dr_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t          group, class;
    ngx_msec_int_t      ms;
    ngx_time_t         *tp;
    ngx_dr_loc_conf_t  *dlcf;

    if (ngx_dr_counters == NULL || r != r->main) {
        return NGX_OK;
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    if (!dlcf->api && !dlcf->admin) {
        return NGX_OK;
    }

    group = dlcf->admin ? 15 : ngx_dr_api_group(&r->uri);

    class = r->headers_out.status / 100;
    if (class < 1 || class > 5) {
        class = 5;
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    if (ms < 0) {
        ms = 0;
    }

    (void) ngx_atomic_fetch_add(&ngx_dr_counters->requests[group][class], 1);
    (void) ngx_atomic_fetch_add(
               &ngx_dr_counters->latency[group][ngx_dr_metrics_bucket(ms)],
               1);
    (void) ngx_atomic_fetch_add(&ngx_dr_counters->latency_us[group],
                                (ngx_atomic_int_t) ms * 1000);

    return NGX_OK;
}


void
ngx_dr_metrics_pg(ngx_uint_t open, ngx_uint_t busy, ngx_uint_t waiting)
{
    if (ngx_dr_counters == NULL || ngx_worker >= NGX_DR_M_WORKERS) {
        return;
    }

    /* this worker's own slot: plain stores, summed at the scrape */
    ngx_dr_counters->pg_open[ngx_worker] = open;
    ngx_dr_counters->pg_busy[ngx_worker] = busy;
    ngx_dr_counters->pg_waiting[ngx_worker] = waiting;
}


void
ngx_dr_metrics_in_flight(ngx_uint_t n)
{
    if (ngx_dr_counters == NULL || ngx_worker >= NGX_DR_M_WORKERS) {
        return;
    }

    ngx_dr_counters->calls_in_flight[ngx_worker] = n;

    if (n > ngx_dr_counters->calls_in_flight_max[ngx_worker]) {
        ngx_dr_counters->calls_in_flight_max[ngx_worker] = n;
    }
}


void
ngx_dr_metrics_pg_query(ngx_uint_t rc, ngx_msec_t ms)
{
    if (ngx_dr_counters == NULL || rc >= NGX_DR_M_PG_OUTCOMES) {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_dr_counters->pg_queries[rc], 1);
    (void) ngx_atomic_fetch_add(
               &ngx_dr_counters->pg_latency[ngx_dr_metrics_bucket(ms)], 1);
    (void) ngx_atomic_fetch_add(&ngx_dr_counters->pg_latency_us,
                                (ngx_atomic_int_t) ms * 1000);
}


static ngx_uint_t
ngx_dr_metrics_tier(void *tier)
{
    ngx_uint_t  i;

    if (tier == NULL || ngx_dr_metrics_tiers == NULL) {
        return NGX_DR_M_TIERS;
    }

    i = (ngx_dr_tier_t *) tier - (ngx_dr_tier_t *) ngx_dr_metrics_tiers->elts;

    return (i < NGX_DR_M_TIERS) ? i : NGX_DR_M_TIERS;
}


void
ngx_dr_metrics_auth(void *tier, ngx_uint_t outcome)
{
    if (ngx_dr_counters) {
        (void) ngx_atomic_fetch_add(
                   &ngx_dr_counters->auth[ngx_dr_metrics_tier(tier)][outcome],
                   1);
    }
}


void
ngx_dr_metrics_limit(void *tier, ngx_uint_t decision)
{
    ngx_uint_t  i;

    i = ngx_dr_metrics_tier(tier);

    if (ngx_dr_counters && i < NGX_DR_M_TIERS && decision < 4) {
        (void) ngx_atomic_fetch_add(&ngx_dr_counters->limit[i][decision], 1);
    }
}


void
ngx_dr_metrics_call(ngx_uint_t provider, ngx_uint_t model,
    ngx_uint_t outcome, ngx_msec_t ms, long tokens_in, long tokens_out,
    long long cost_micro)
{
    ngx_dr_counters_t  *m;

    m = ngx_dr_counters;

    if (m == NULL || provider >= NGX_DR_M_PROVIDERS
        || outcome >= NGX_DR_M_CALL_OUTCOMES)
    {
        return;
    }

    /* models past the fourth of a provider share its last counter */
    model = ngx_min(model, NGX_DR_M_MODELS - 1);

    (void) ngx_atomic_fetch_add(&m->calls[provider][model][outcome], 1);

    if (outcome == NGX_DR_M_CALL_BREAKER) {
        return;
    }

    (void) ngx_atomic_fetch_add(
               &m->call_latency[provider][ngx_dr_metrics_bucket(ms)], 1);
    (void) ngx_atomic_fetch_add(&m->call_latency_us[provider],
                                (ngx_atomic_int_t) ms * 1000);

    if (tokens_in > 0) {
        (void) ngx_atomic_fetch_add(&m->tokens_in[provider], tokens_in);
    }

    if (tokens_out > 0) {
        (void) ngx_atomic_fetch_add(&m->tokens_out[provider], tokens_out);
    }

    if (cost_micro > 0) {
        (void) ngx_atomic_fetch_add(&m->cost_micro[provider], cost_micro);
    }
}


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
    u_char               *p, *last, *start;
    size_t                size;
    ngx_int_t             rc;
    ngx_uint_t            g, c, t, o, i, any;
    ngx_buf_t            *b;
    ngx_str_t            *tname, none = ngx_string("none");
    ngx_chain_t           out;
    ngx_atomic_uint_t     open, busy, waiting, hits, misses, evictions;
    ngx_atomic_uint_t     in_flight, in_flight_max;
    ngx_atomic_uint_t     entries;
    ngx_dr_tier_t        *tiers;
    ngx_dr_counters_t    *m;
    ngx_dr_main_conf_t   *dmcf;

    static const char  *classes[6] = { "", "1xx", "2xx", "3xx", "4xx",
                                       "5xx" };

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_dr_counters;
    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    tiers = ngx_dr_metrics_tiers ? ngx_dr_metrics_tiers->elts : NULL;

    /* sized first: every series of every family, at most */
    size = 256 * 1024;

    start = ngx_pnalloc(r->pool, size);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = start;
    last = start + size;

    p = ngx_slprintf(p, last,
            "# HELP dr_http_requests_total Requests answered by the module, "
            "by endpoint group and status class.\n"
            "# TYPE dr_http_requests_total counter\n");

    for (g = 0; g < NGX_DR_M_GROUPS; g++) {
        for (c = 1; c <= 5; c++) {
            if (m->requests[g][c]) {
                p = ngx_slprintf(p, last,
                        "dr_http_requests_total{group=\"%V\",class=\"%s\"} "
                        "%uA\n", &ngx_dr_metrics_groups[g], classes[c],
                        m->requests[g][c]);
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
                                         "group", &ngx_dr_metrics_groups[g],
                                         m->latency[g], m->latency_us[g]);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_auth_total API key checks, by tier and outcome.\n"
            "# TYPE dr_auth_total counter\n");

    for (t = 0; t <= NGX_DR_M_TIERS; t++) {
        tname = (t < NGX_DR_M_TIERS && tiers
                 && t < ngx_dr_metrics_tiers->nelts)
                ? &tiers[t].name : &none;

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

    for (t = 0; tiers && t < NGX_DR_M_TIERS
                && t < ngx_dr_metrics_tiers->nelts; t++)
    {
        for (o = 1; o < 4; o++) {
            if (m->limit[t][o]) {
                p = ngx_slprintf(p, last,
                        "dr_limit_decisions_total{tier=\"%V\","
                        "decision=\"%s\"} %uA\n", &tiers[t].name,
                        ngx_dr_metrics_limit_text[o], m->limit[t][o]);
            }
        }
    }

    if (ngx_dr_cache_stats(&dmcf->cache, &hits, &misses, &evictions,
                           &entries)
        == NGX_OK)
    {
        p = ngx_slprintf(p, last,
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

    open = busy = waiting = 0;

    for (i = 0; i < NGX_DR_M_WORKERS; i++) {
        open += m->pg_open[i];
        busy += m->pg_busy[i];
        waiting += m->pg_waiting[i];
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

    in_flight = in_flight_max = 0;

    for (i = 0; i < NGX_DR_M_WORKERS; i++) {
        in_flight += m->calls_in_flight[i];
        in_flight_max = ngx_max(in_flight_max, m->calls_in_flight_max[i]);
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
    p = ngx_dr_metrics_histogram(p, last, "dr_pg_query_duration_seconds",
                                 NULL, NULL, m->pg_latency,
                                 m->pg_latency_us);

    p = ngx_dr_metrics_providers(r, p, last, m, dmcf);

    if (m->queue_known) {
        p = ngx_slprintf(p, last,
                "# HELP dr_jobs Crawl jobs, by status (refreshed every "
                "15 s).\n"
                "# TYPE dr_jobs gauge\n");

        for (o = 0; o < 5; o++) {
            p = ngx_slprintf(p, last, "dr_jobs{status=\"%s\"} %uA\n",
                             ngx_dr_metrics_jobs_text[o], m->jobs[o]);
        }

        p = ngx_slprintf(p, last,
                "# HELP dr_runs_in_progress Crawl runs queued or running.\n"
                "# TYPE dr_runs_in_progress gauge\n"
                "dr_runs_in_progress %uA\n", m->runs_running);
    }

    if (p == last) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "the metrics do not fit in %uz bytes", size);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = p - start;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = start;
    b->last = p;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static const char  *ngx_dr_metrics_call_text[NGX_DR_M_CALL_OUTCOMES] = {
    "ok", "429", "5xx", "4xx", "timeout", "error", "bad_answer",
    "breaker_open"
};

static const char  *ngx_dr_metrics_breaker_text[3] = {
    "closed", "open", "half_open"
};


static u_char *
ngx_dr_metrics_providers(ngx_http_request_t *r, u_char *p, u_char *last,
    ngx_dr_counters_t *m, ngx_dr_main_conf_t *dmcf)
{
    u_char             *k;
    ngx_int_t           tokens;
    ngx_str_t           key, *models;
    ngx_uint_t          i, j, o, n, b;
    ngx_atomic_uint_t   cost;
    ngx_dr_provider_t  *pr;
    u_char              name[128];

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
        for (b = 0; b < 3; b++) {
            p = ngx_slprintf(p, last,
                    "dr_provider_breaker{provider=\"%V\",state=\"%s\"} "
                    "%d\n", &pr[i].name, ngx_dr_metrics_breaker_text[b],
                    m->breaker[i] == b);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP dr_provider_bucket_tokens Tokens available in the "
            "bucket of each provider key (masked).\n"
            "# TYPE dr_provider_bucket_tokens gauge\n");

    for (i = 0; i < n; i++) {
        for (o = 0; o < pr[i].keys.nelts; o++) {
            k = ngx_snprintf(name, sizeof(name), "p:%V:%ui", &pr[i].name, o);
            key.data = name;
            key.len = k - name;

            tokens = ngx_dr_limit_tokens(&dmcf->limit, &key);
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
                             name, label, value, ngx_dr_metrics_le_text[i],
                             total);

        } else {
            p = ngx_slprintf(p, last, "%s_bucket{le=\"%s\"} %uA\n", name,
                             ngx_dr_metrics_le_text[i], total);
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


/* the queue's figures, for the scrape, from worker 0 in the background */

static const char  ngx_dr_metrics_queue_sql[] =
    "SELECT"
    " count(*) FILTER (WHERE status = 'queued'),"
    " count(*) FILTER (WHERE status = 'leased'),"
    " count(*) FILTER (WHERE status = 'done'),"
    " count(*) FILTER (WHERE status = 'failed'),"
    " count(*) FILTER (WHERE status = 'dead'),"
    " (SELECT count(*) FROM runs WHERE status IN ('queued', 'running')) "
    "FROM jobs";


static void
ngx_dr_metrics_queue(ngx_event_t *ev)
{
    ngx_pool_t  *pool;

    if (ngx_exiting) {
        return;
    }

    pool = ngx_create_pool(1024, ev->log);

    if (pool == NULL
        || ngx_dr_pg_query(pool, ev->log, NGX_DR_PG_READ, 0,
                           ngx_dr_metrics_queue_sql, 0, NULL,
                           ngx_dr_metrics_queued, NULL)
           == NULL)
    {
        if (pool) {
            ngx_destroy_pool(pool);
        }

        ngx_add_timer(ev, NGX_DR_METRICS_QUEUE);
    }
}


static void
ngx_dr_metrics_queued(ngx_dr_pg_query_t *q)
{
    ngx_uint_t  i;

    if (q->rc == NGX_DR_PG_OK && PQntuples(q->res) == 1) {
        for (i = 0; i < 5; i++) {
            ngx_dr_counters->jobs[i] = ngx_atoof(
                (u_char *) PQgetvalue(q->res, 0, i),
                PQgetlength(q->res, 0, i));
        }

        ngx_dr_counters->runs_running = ngx_atoof(
            (u_char *) PQgetvalue(q->res, 0, 5), PQgetlength(q->res, 0, 5));
        ngx_dr_counters->queue_known = 1;
    }

    ngx_destroy_pool(q->pool);

    if (!ngx_exiting) {
        ngx_add_timer(&ngx_dr_metrics_queue_event, NGX_DR_METRICS_QUEUE);
    }
}

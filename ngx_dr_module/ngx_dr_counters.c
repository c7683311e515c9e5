
/*
 * Domain Runner: the counters every part writes, in shared memory.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_dr_counters.h"


#define NGX_DR_COUNTERS_VERSION  7


static ngx_int_t ngx_dr_counters_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


ngx_dr_counters_t  *ngx_dr_counters;

/* the zone's lock: the budgets' names are copied whole, never torn */
static ngx_slab_pool_t  *ngx_dr_counters_shpool;

ngx_str_t  ngx_dr_counters_groups[NGX_DR_M_GROUPS] = {
    ngx_string("health"), ngx_string("stats"), ngx_string("rankings"),
    ngx_string("public"), ngx_string("competitive"), ngx_string("ticker"),
    ngx_string("categories"), ngx_string("shadows"),
    ngx_string("fire_alarm"), ngx_string("drift"), ngx_string("consensus"),
    ngx_string("volatility"), ngx_string("time_series"),
    ngx_string("providers"), ngx_string("openapi"), ngx_string("admin"),
    ngx_string("usage"), ngx_string("jolt_benchmark"), ngx_string("seo"),
    ngx_string("other")
};

/* the upper bounds of the latency buckets, in ms and as Prometheus's le */

static ngx_msec_t  ngx_dr_counters_le_ms[NGX_DR_M_BUCKETS - 1] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000
};

const char  *ngx_dr_counters_le[NGX_DR_M_BUCKETS] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "10", "+Inf"
};


ngx_int_t
ngx_dr_counters_zone(ngx_conf_t *cf, void *tag)
{
    ngx_shm_zone_t  *shm;

    ngx_str_t  name = ngx_string("dr_metrics");

    shm = ngx_shared_memory_add(cf, &name,
                                ngx_align(sizeof(ngx_dr_counters_t)
                                          + 8 * ngx_pagesize, ngx_pagesize),
                                tag);
    if (shm == NULL) {
        return NGX_ERROR;
    }

    shm->init = ngx_dr_counters_init_zone;
    shm->data = shm;

    return NGX_OK;
}


static ngx_int_t
ngx_dr_counters_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t    *shpool;
    ngx_dr_counters_t  *counters;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {
        /* a reload: the counters go on */
        counters = shpool->data;

        if (counters->version != NGX_DR_COUNTERS_VERSION) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "the metrics zone was made by another version "
                          "of the module: restart nginx");
            return NGX_ERROR;
        }

        ngx_dr_counters = counters;
        ngx_dr_counters_shpool = shpool;
        return NGX_OK;
    }

    counters = ngx_slab_calloc(shpool, sizeof(ngx_dr_counters_t));
    if (counters == NULL) {
        return NGX_ERROR;
    }

    counters->version = NGX_DR_COUNTERS_VERSION;
    shpool->data = counters;
    ngx_dr_counters = counters;
    ngx_dr_counters_shpool = shpool;

    return NGX_OK;
}


ngx_uint_t
ngx_dr_counters_bucket(ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_DR_M_BUCKETS - 1; i++) {
        if (ms <= ngx_dr_counters_le_ms[i]) {
            return i;
        }
    }

    return NGX_DR_M_BUCKETS - 1;
}


/* a request the module answered, when it is done */

void
ngx_dr_counters_request(ngx_uint_t group, ngx_uint_t status, ngx_msec_t ms)
{
    ngx_uint_t          class;
    ngx_dr_counters_t  *m;

    m = ngx_dr_counters;

    if (m == NULL || group >= NGX_DR_M_GROUPS) {
        return;
    }

    class = status / 100;
    if (class < 1 || class > NGX_DR_M_CLASSES) {
        class = NGX_DR_M_CLASSES;
    }

    (void) ngx_atomic_fetch_add(&m->requests[group][class - 1], 1);
    (void) ngx_atomic_fetch_add(
               &m->latency[group][ngx_dr_counters_bucket(ms)], 1);
    (void) ngx_atomic_fetch_add(&m->latency_us[group],
                                (ngx_atomic_int_t) ms * 1000);
}


void
ngx_dr_counters_pg(ngx_uint_t open, ngx_uint_t busy, ngx_uint_t waiting)
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
ngx_dr_counters_pg_query(ngx_uint_t rc, ngx_msec_t ms)
{
    if (ngx_dr_counters == NULL || rc >= NGX_DR_M_PG_OUTCOMES) {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_dr_counters->pg_queries[rc], 1);
    (void) ngx_atomic_fetch_add(
               &ngx_dr_counters->pg_latency[ngx_dr_counters_bucket(ms)], 1);
    (void) ngx_atomic_fetch_add(&ngx_dr_counters->pg_latency_us,
                                (ngx_atomic_int_t) ms * 1000);
}


void
ngx_dr_counters_pg_connect_error(void)
{
    if (ngx_dr_counters) {
        (void) ngx_atomic_fetch_add(&ngx_dr_counters->pg_connect_errors, 1);
    }
}


void
ngx_dr_counters_in_flight(ngx_uint_t n)
{
    if (ngx_dr_counters == NULL || ngx_worker >= NGX_DR_M_WORKERS) {
        return;
    }

    ngx_dr_counters->calls_in_flight[ngx_worker] = n;

    if (n > ngx_dr_counters->calls_in_flight_max[ngx_worker]) {
        ngx_dr_counters->calls_in_flight_max[ngx_worker] = n;
    }
}


/* tier: the index of the tier, NGX_DR_M_TIERS for none */

void
ngx_dr_counters_auth(ngx_uint_t tier, ngx_uint_t outcome)
{
    if (ngx_dr_counters == NULL || outcome >= NGX_DR_M_AUTH_OUTCOMES) {
        return;
    }

    tier = ngx_min(tier, NGX_DR_M_TIERS);

    (void) ngx_atomic_fetch_add(&ngx_dr_counters->auth[tier][outcome], 1);
}


void
ngx_dr_counters_limit(ngx_uint_t tier, ngx_uint_t decision)
{
    if (ngx_dr_counters && tier < NGX_DR_M_TIERS
        && decision < NGX_DR_M_LIMIT_DECISIONS)
    {
        (void) ngx_atomic_fetch_add(&ngx_dr_counters->limit[tier][decision],
                                    1);
    }
}


void
ngx_dr_counters_call(ngx_uint_t provider, ngx_uint_t model,
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
               &m->call_latency[provider][ngx_dr_counters_bucket(ms)], 1);
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


void
ngx_dr_counters_queue(ngx_atomic_uint_t *jobs, ngx_atomic_uint_t runs)
{
    ngx_uint_t  i;

    if (ngx_dr_counters == NULL) {
        return;
    }

    for (i = 0; i < NGX_DR_JOB_STATES; i++) {
        ngx_dr_counters->jobs[i] = jobs[i];
    }

    ngx_dr_counters->runs_running = runs;
    ngx_dr_counters->queue_known = 1;
}


/* the spend budgets' figures, as worker 0 last read them */

void
ngx_dr_counters_budgets_set(ngx_dr_counters_budget_t *b, ngx_uint_t n)
{
    if (ngx_dr_counters == NULL) {
        return;
    }

    n = ngx_min(n, NGX_DR_M_BUDGETS);

    ngx_shmtx_lock(&ngx_dr_counters_shpool->mutex);

    ngx_memcpy(ngx_dr_counters->budgets, b,
               n * sizeof(ngx_dr_counters_budget_t));
    ngx_dr_counters->nbudgets = n;
    ngx_dr_counters->budgets_known = 1;

    ngx_shmtx_unlock(&ngx_dr_counters_shpool->mutex);
}


/* copies them into b (room for NGX_DR_M_BUDGETS); -1 when not read yet */

ngx_int_t
ngx_dr_counters_budgets_get(ngx_dr_counters_budget_t *b)
{
    ngx_int_t  n;

    if (ngx_dr_counters == NULL) {
        return -1;
    }

    ngx_shmtx_lock(&ngx_dr_counters_shpool->mutex);

    n = ngx_dr_counters->budgets_known ? (ngx_int_t) ngx_dr_counters->nbudgets
                                       : -1;

    if (n > 0) {
        ngx_memcpy(b, ngx_dr_counters->budgets,
                   n * sizeof(ngx_dr_counters_budget_t));
    }

    ngx_shmtx_unlock(&ngx_dr_counters_shpool->mutex);

    return n;
}


/*
 * Domain Runner: liveness, readiness and the health summary.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_http.h"
#include "ngx_dr_health.h"
#include "ngx_dr_llm.h"
#include "ngx_dr_breaker.h"


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


/*
 * The health endpoints: never limited, never asking for a key, so that a
 * load balancer or an orchestrator may poll them as often as it likes.
 */

ngx_uint_t
ngx_dr_health_path(ngx_str_t *uri)
{
    static ngx_str_t  paths[] = {
        ngx_string("/healthz"), ngx_string("/readyz"), ngx_string("/health")
    };

    ngx_uint_t  i;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (uri->len == paths[i].len
            && ngx_strncmp(uri->data, paths[i].data, uri->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


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
    return ngx_dr_http_query(r, NGX_DR_PG_URGENT, NGX_DR_READY_TIMEOUT,
                            "SELECT 1", 0, NULL, ngx_dr_health_ready_done);
}


static ngx_int_t
ngx_dr_health_ready_done(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t                  *body, *reason, *replicas, *open;
    ngx_str_t                name;
    ngx_uint_t               i, n, up, usable;
    ngx_dr_counters_t       *m;
    ngx_dr_provider_t       *pr;
    ngx_dr_main_conf_t      *dmcf;
    ngx_dr_breaker_state_t   st;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    m = ngx_dr_counters;

    if (q->rc == NGX_DR_PG_OK) {
        body = json_pack("{s:s, s:s}", "status", "ready", "database", "ok");

    } else {
        reason = ngx_dr_json_str(&q->error);
        if (reason == NULL) {
            reason = json_string("the database did not answer");
        }

        body = json_pack("{s:s, s:s, s:s, s:O, s:o}",
                         "status", "not_ready",
                         "database", "unavailable",
                         "error", "database_unavailable",
                         "message", reason,
                         "detail", reason);
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

    /*
     * The providers are reported, never a reason to be unready: this node
     * serves its API traffic whatever the crawl's providers do, and a
     * provider outage must not take the API off a load balancer.
     */

    if (dmcf->providers) {
        pr = dmcf->providers->elts;
        open = json_array();
        usable = 0;

        for (i = 0; i < dmcf->providers->nelts; i++) {
            ngx_dr_breaker_state(&pr[i], &st);

            if (st.state == NGX_DR_BREAKER_OPEN) {
                json_array_append_new(open, ngx_dr_json_str(&pr[i].name));

            } else {
                usable++;
            }
        }

        json_object_set_new(body, "providers",
            json_pack("{s:i, s:i, s:o}",
                      "configured", (int) dmcf->providers->nelts,
                      "usable", (int) usable, "open_breakers", open));
    }

    if (m && m->queue_known) {
        json_object_set_new(body, "queue",
            json_pack("{s:I, s:I, s:I, s:I}",
                      "queued", (json_int_t) m->jobs[NGX_DR_JOB_QUEUED],
                      "leased", (json_int_t) m->jobs[NGX_DR_JOB_LEASED],
                      "failed", (json_int_t) m->jobs[NGX_DR_JOB_FAILED],
                      "dead", (json_int_t) m->jobs[NGX_DR_JOB_DEAD]));
    }

    return ngx_dr_json_send(r, q->rc == NGX_DR_PG_OK
                               ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE,
                            body);
}


/* health: the original API's summary of what is monitored */

ngx_int_t
ngx_dr_health_status(ngx_http_request_t *r)
{
    return ngx_dr_http_query(r, NGX_DR_PG_READ, 0, ngx_dr_health_sql, 0, NULL,
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

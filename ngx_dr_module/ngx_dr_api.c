
/*
 * Domain Runner: the public JSON API, its router and its query path.
 *
 * Paths and field names are those of the original public API.  Every
 * parameter is validated before any query, and reaches PostgreSQL only as
 * a bound parameter; sort orders choose among fixed statements.  Answers
 * of the data endpoints are kept in the shared response cache, which is
 * invalidated whenever new scores are written (a trigger notifies the
 * "dr_scores" channel, which worker 0 of each node listens to).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_health.h"
#include "ngx_dr_report.h"
#include "ngx_dr_account.h"
#include "ngx_dr_api.h"
#include "ngx_dr_validate.h"
#include "ngx_dr_score.h"
#include "ngx_dr_events.h"
#include "ngx_dr_seo.h"
#include "ngx_dr_tensor.h"


#define NGX_DR_API_PARAM(field)  offsetof(ngx_dr_api_params_t, field)
#define ngx_dr_api_num(ctx, arg)                                             \
    ((unsigned long *) ((u_char *) &(ctx)->params + (arg)->offset))
#define NGX_DR_API_ISO_TIME    \
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"


typedef struct ngx_dr_api_ctx_s  ngx_dr_api_ctx_t;

typedef ngx_int_t (*ngx_dr_api_endpoint_pt)(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
typedef json_t *(*ngx_dr_api_build_pt)(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);


/* the query parameters of every endpoint, by name */
typedef struct {
    unsigned long             page;
    unsigned long             limit;
    unsigned long             sort;
    unsigned long             include_alerts;
    unsigned long             days;
    unsigned long             runs;
    ngx_str_t                 search;       /* data NULL: not given */
} ngx_dr_api_params_t;


/* a query parameter an endpoint accepts, and where it goes */
typedef struct {
    ngx_str_t                 name;
    size_t                    offset;       /* in ngx_dr_api_params_t */
    ngx_uint_t                type;
    unsigned long             min;
    unsigned long             max;
    unsigned long             dflt;
    const char              **values;       /* NGX_DR_ARG_ENUM */
} ngx_dr_api_arg_t;

#define NGX_DR_ARG_UINT    0
#define NGX_DR_ARG_BOOL    1
#define NGX_DR_ARG_ENUM    2
#define NGX_DR_ARG_SEARCH  3


/* what the statement of a data endpoint is given */
#define NGX_DR_API_NO_PARAMS   0
#define NGX_DR_API_DOMAIN      1       /* $1: the domain */
#define NGX_DR_API_HISTORY     2       /* $1: the domain, $2: days */
#define NGX_DR_API_RUNS        3       /* $1: runs, $2: limit */
#define NGX_DR_API_PAGE        4       /* $1: limit, $2: offset, $3: page */


/*
 * An endpoint: an answer of its own (handler), one of the health checks
 * (check), or a statement whose rows build() turns into the answer.
 */
typedef struct {
    ngx_str_t                 prefix;
    ngx_str_t                 suffix;       /* with a {domain} between */
    ngx_dr_api_arg_t         *args;
    ngx_dr_api_endpoint_pt    handler;
    ngx_http_handler_pt       check;
    const char               *sql;
    ngx_uint_t                params;       /* NGX_DR_API_NO_PARAMS, ... */
    ngx_dr_api_build_pt       build;
    const char               *list;         /* the key of a plain list */
    unsigned                  domain:1;
    unsigned                  cached:1;
    unsigned                  group:5;      /* of the counters */
    unsigned                  own_body:1;   /* any method, its body */
} ngx_dr_api_route_t;


struct ngx_dr_api_ctx_s {
    ngx_http_request_t       *request;
    ngx_dr_api_route_t       *route;
    ngx_dr_api_build_pt       build;

    ngx_str_t                 domain;
    ngx_dr_api_params_t       params;

    ngx_int_t                 rc;           /* of a rejection */
    ngx_str_t                 key;          /* cache key; empty: none */
    ngx_dr_cache_entry_t      stale;
    unsigned                  has_stale:1;
};


static ngx_dr_api_route_t *ngx_dr_api_route(ngx_str_t *uri, u_char **start,
    u_char **end);
static ngx_int_t ngx_dr_api_log(ngx_http_request_t *r);
static ngx_int_t ngx_dr_api_error_page(ngx_http_request_t *r);
static ngx_int_t ngx_dr_api_args(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_reject(ngx_dr_api_ctx_t *ctx,
    ngx_http_request_t *r, ngx_uint_t status, const char *error,
    const char *fmt, ...);
static ngx_int_t ngx_dr_api_arg_value(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, ngx_dr_api_arg_t *arg, ngx_str_t *raw);
static ngx_int_t ngx_dr_api_unescape(ngx_pool_t *pool, ngx_str_t *raw,
    ngx_str_t *out);
static ngx_int_t ngx_dr_api_cache_key(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_serve(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, const char *sql, int nparams,
    const char **params, ngx_dr_api_build_pt build);
static ngx_int_t ngx_dr_api_built(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_api_send_entry(ngx_http_request_t *r,
    ngx_dr_cache_entry_t *entry);
static void ngx_dr_api_scores_changed(ngx_str_t *channel, ngx_str_t *payload,
    void *data);

static ngx_int_t ngx_dr_api_rankings(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_ticker(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_openapi(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_register(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_login(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_password(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_me(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);
static ngx_int_t ngx_dr_api_usage(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);

static json_t *ngx_dr_api_stats_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_public_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_list_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_fire_alarm_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_drift_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_consensus_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_volatility_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_time_series_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_competitive_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_providers_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static json_t *ngx_dr_api_written_build(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static ngx_int_t ngx_dr_api_data(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx);

static json_t *ngx_dr_api_value(PGresult *res, int row, int col);
static json_t *ngx_dr_api_row(PGresult *res, int row, int from, int to);
static json_t *ngx_dr_api_rows(PGresult *res, int from, int to);
static int ngx_dr_api_col(PGresult *res, const char *name);
static double ngx_dr_api_double(PGresult *res, int row, const char *name);
static json_t *ngx_dr_api_trend(PGresult *res, int row, const char *name);
static json_t *ngx_dr_api_not_found(ngx_http_request_t *r,
    ngx_dr_api_ctx_t *ctx, PGresult *res, ngx_uint_t *status);
static const char *ngx_dr_api_direction(double trend);
static double ngx_dr_api_round1(double x);


extern const char    ngx_dr_openapi_json[];
extern const size_t  ngx_dr_openapi_json_len;


static const char  *ngx_dr_api_sorts[] = {
    "score", "consensus", "trend", "domain", NULL
};

static ngx_dr_api_arg_t  ngx_dr_api_rankings_args[] = {
    { ngx_string("page"), NGX_DR_API_PARAM(page), NGX_DR_ARG_UINT,
      1, 100000, 1, NULL },
    { ngx_string("limit"), NGX_DR_API_PARAM(limit), NGX_DR_ARG_UINT,
      1, 100, 20, NULL },
    { ngx_string("sort"), NGX_DR_API_PARAM(sort), NGX_DR_ARG_ENUM,
      0, 0, 0, ngx_dr_api_sorts },
    { ngx_string("search"), NGX_DR_API_PARAM(search), NGX_DR_ARG_SEARCH,
      0, 0, 0, NULL },
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};

static ngx_dr_api_arg_t  ngx_dr_api_public_args[] = {
    { ngx_string("include_alerts"), NGX_DR_API_PARAM(include_alerts),
      NGX_DR_ARG_BOOL, 0, 1, 0, NULL },
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};

static ngx_dr_api_arg_t  ngx_dr_api_ticker_args[] = {
    { ngx_string("limit"), NGX_DR_API_PARAM(limit), NGX_DR_ARG_UINT,
      1, 20, 5, NULL },
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};

static ngx_dr_api_arg_t  ngx_dr_api_days_args[] = {
    { ngx_string("days"), NGX_DR_API_PARAM(days), NGX_DR_ARG_UINT,
      1, 365, 30, NULL },
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};

static ngx_dr_api_arg_t  ngx_dr_api_usage_args[] = {
    { ngx_string("days"), NGX_DR_API_PARAM(days), NGX_DR_ARG_UINT,
      1, NGX_DR_REPORT_DAYS_MAX, NGX_DR_REPORT_DAYS, NULL },
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};

static ngx_dr_api_arg_t  ngx_dr_api_trends_args[] = {
    { ngx_string("runs"), NGX_DR_API_PARAM(runs), NGX_DR_ARG_UINT,
      2, 50, 5, NULL },
    { ngx_string("limit"), NGX_DR_API_PARAM(limit), NGX_DR_ARG_UINT,
      1, 100, 20, NULL },
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};

static ngx_dr_api_arg_t  ngx_dr_api_page_args[] = {
    { ngx_string("page"), NGX_DR_API_PARAM(page), NGX_DR_ARG_UINT,
      1, 100000, 1, NULL },
    { ngx_string("limit"), NGX_DR_API_PARAM(limit), NGX_DR_ARG_UINT,
      1, 100, 20, NULL },
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};

static ngx_dr_api_arg_t  ngx_dr_api_no_args[] = {
    { ngx_null_string, 0, 0, 0, 0, 0, NULL }
};


/*
 * The statements of the data endpoints.  The latest scores of each
 * domain are rows of latest_scores, written with the domain_scores row
 * (sql/017_latest_scores.sql); a rank or a percentile is counted from the
 * index of the category's peers, and the totals are kept counts.
 */

static const char  ngx_dr_api_stats_sql[] =
    "SELECT dr_count('domains') AS total_domains,"
    " (SELECT round(avg(memory_score)::numeric, 1)"
    "   FROM latest_scores WHERE active) AS average_memory_score,"
    " dr_count('responses') AS total_ai_responses,"
    " (SELECT count(*) FROM latest_scores"
    "   WHERE active AND risk_level = 'critical') AS critical_risk_domains,"
    " (SELECT to_char(max(computed_at) AT TIME ZONE 'UTC', "
    NGX_DR_API_ISO_TIME ") FROM latest_scores WHERE active) AS last_updated";


static const char  ngx_dr_api_public_sql[] =
    "SELECT d.domain, d.category, s.domain_id IS NOT NULL AS scored,"
    " round(s.memory_score::numeric, 1) AS memory_score,"
    " round(s.ai_consensus::numeric, 1) AS ai_consensus,"
    " round(s.cohesion::numeric, 1) AS cohesion,"
    " s.models_tracking, s.response_count, s.trend,"
    " s.models_positive, s.models_neutral, s.models_negative,"
    " s.risk_level, to_json(s.alerts) AS alerts,"
    " coalesce(s.details->'key_themes', '[]') AS key_themes,"
    " to_char(s.computed_at AT TIME ZONE 'UTC', " NGX_DR_API_ISO_TIME
    ") AS updated_at,"
    " CASE WHEN s.computed_at > now() - interval '24 hours' THEN 'fresh'"
    "  WHEN s.computed_at > now() - interval '7 days' THEN 'recent'"
    "  ELSE 'stale' END AS freshness,"
    " (SELECT 100.0 * count(*) FILTER (WHERE p.score <= s.score)"
    "   / nullif(count(*), 0) FROM latest_scores p"
    "   WHERE p.active AND p.peer = dr_peer(d.category)) AS percentile "
    "FROM domains d LEFT JOIN latest_scores s"
    " ON s.domain_id = d.id AND s.active "
    "WHERE d.domain = $1 AND d.active";


/* the categories found by skipping from one to the next in the index */
static const char  ngx_dr_api_categories_sql[] =
    "WITH RECURSIVE c AS ("
    " (SELECT category FROM domains WHERE active AND category IS NOT NULL"
    "  ORDER BY category LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT d.category FROM domains d"
    "  WHERE d.active AND d.category > c.category"
    "  ORDER BY d.category LIMIT 1) FROM c WHERE c.category IS NOT NULL) "
    "SELECT c.category AS name,"
    " (SELECT count(*) FROM domains d WHERE d.active"
    "   AND d.category = c.category) AS \"domainCount\","
    " (SELECT round(avg(s.score)::numeric, 1) FROM latest_scores s"
    "   WHERE s.active AND s.peer = dr_peer(c.category))"
    " AS \"averageScore\","
    " coalesce((SELECT to_json(array_agg(t.domain"
    "   ORDER BY t.score DESC, t.domain))"
    "   FROM (SELECT s.domain, s.score FROM latest_scores s"
    "    WHERE s.active AND s.peer = dr_peer(c.category)"
    "    ORDER BY s.score DESC, s.domain LIMIT 3) t), '[]')"
    " AS \"topDomains\" "
    "FROM c WHERE c.category IS NOT NULL ORDER BY c.category";


static const char  ngx_dr_api_shadows_sql[] =
    "WITH h AS ("
    " SELECT s.domain_id, s.memory_score, s.details,"
    "  row_number() OVER w AS rn,"
    "  lead(s.memory_score) OVER w AS older"
    " FROM regular_domain_scores s"
    " JOIN domains d ON d.id = s.domain_id AND d.active"
    " WINDOW w AS (PARTITION BY s.domain_id"
    "              ORDER BY s.computed_at DESC, s.run_id DESC)),"
    " streak AS ("
    " SELECT domain_id, coalesce(min(rn) FILTER (WHERE older IS NULL"
    "   OR memory_score >= older), max(rn) + 1) - 1 AS weeks"
    " FROM h GROUP BY domain_id) "
    "SELECT d.domain, round(cur.memory_score::numeric, 1) AS \"currentScore\","
    " round(prev.memory_score::numeric, 1) AS \"previousScore\","
    " round((100 * (prev.memory_score - cur.memory_score)"
    "   / prev.memory_score)::numeric, 1) AS \"declineRate\","
    " streak.weeks AS \"decliningWeeks\","
    " coalesce((SELECT json_agg(m.k ORDER BY m.k)"
    "   FROM jsonb_each(prev.details->'models') m(k, v)"
    "   WHERE (m.v->>'recognized')::boolean"
    "     AND NOT coalesce((cur.details->'models'->m.k->>'recognized')"
    "                      ::boolean, false)), '[]') AS \"modelsForgetting\" "
    "FROM h cur JOIN h prev ON prev.domain_id = cur.domain_id AND prev.rn = 2"
    " JOIN streak ON streak.domain_id = cur.domain_id"
    " JOIN domains d ON d.id = cur.domain_id "
    "WHERE cur.rn = 1 AND cur.memory_score < prev.memory_score "
    "ORDER BY 4 DESC, d.domain";


static const char  ngx_dr_api_fire_alarm_sql[] =
    "SELECT s.domain, s.reputation_risk,"
    " round(s.memory_score::numeric, 1) AS ai_visibility,"
    " round(s.ai_consensus::numeric, 1) AS brand_clarity,"
    " coalesce(round((100.0 * s.models_tracking"
    "   / nullif((SELECT count(*) FROM models WHERE active), 0))::numeric,"
    "   1), 0) AS monitoring_coverage,"
    " to_json(s.alerts) AS active_alert_types "
    "FROM latest_scores s "
    "WHERE s.active AND (s.risk_level IN ('high', 'critical')"
    " OR cardinality(s.alerts) > 0) "
    "ORDER BY s.reputation_risk DESC, s.domain";


static const char  ngx_dr_api_history_sql[] =
    "SELECT d.domain, s.domain_id IS NOT NULL AS scored,"
    " to_char(s.computed_at AT TIME ZONE 'UTC', " NGX_DR_API_ISO_TIME
    ") AS date,"
    " round(s.memory_score::numeric, 1) AS memory_score,"
    " round(s.ai_consensus::numeric, 1) AS ai_consensus,"
    " s.response_count,"
    " round(s.drift_score::numeric, 3) AS drift_score,"
    " s.trend, round(s.volatility::numeric, 1) AS volatility,"
    " s.risk_level, s.models_tracking,"
    " coalesce((SELECT jsonb_object_agg(m.k,"
    "   round((m.v->>'agreement')::numeric, 1))"
    "   FROM jsonb_each(s.details->'models') m(k, v)"
    "   WHERE m.v ? 'agreement'), '{}') AS model_agreement,"
    " s.computed_at > now() - make_interval(days => $2::int) AS in_range,"
    NGX_DR_EVENTS_SERIES " "
    "FROM domains d LEFT JOIN regular_domain_scores s ON s.domain_id = d.id "
    "WHERE d.domain = $1 AND d.active "
    "ORDER BY s.computed_at DESC NULLS LAST, s.run_id DESC LIMIT 400";


/*
 * The rank is one more than the count of the peers above; the first ten
 * come from the peers' index in rank order, so ranking them alone gives
 * their ranks among all.
 */
static const char  ngx_dr_api_competitive_sql[] =
    "WITH me AS (SELECT id, domain, category, dr_peer(category) AS peer"
    "            FROM domains WHERE domain = $1 AND active) "
    "SELECT me.domain, me.category, p.domain_id IS NOT NULL AS scored,"
    " round(p.score::numeric, 1) AS score,"
    " CASE WHEN p.domain_id IS NOT NULL THEN"
    "  (SELECT count(*) + 1 FROM latest_scores o"
    "   WHERE o.active AND o.peer = me.peer AND o.score > p.score) END"
    " AS rank,"
    " (SELECT count(*) FROM latest_scores o"
    "   WHERE o.active AND o.peer = me.peer) AS total,"
    " (SELECT 100.0 * (count(*) FILTER (WHERE o.score < p.score)"
    "   + 0.5 * count(*) FILTER (WHERE o.score = p.score)) / count(*)"
    "   FROM latest_scores o WHERE o.active AND o.peer = me.peer)"
    " AS percentile,"
    " (SELECT json_agg(json_build_object('domain', x.domain,"
    "   'score', round(x.score::numeric, 1), 'rank', x.rank)"
    "   ORDER BY x.rank, x.domain)"
    "   FROM (SELECT t.domain, t.score,"
    "    rank() OVER (ORDER BY t.score DESC) AS rank"
    "    FROM (SELECT o.domain, o.score FROM latest_scores o"
    "     WHERE o.active AND o.peer = me.peer"
    "     ORDER BY o.score DESC, o.domain LIMIT 10) t) x)"
    "   AS peers "
    "FROM me LEFT JOIN latest_scores p ON p.domain_id = me.id AND p.active";


static const char  ngx_dr_api_providers_sql[] =
    "WITH ok AS ("
    " SELECT m.provider, count(*) AS n,"
    "  percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms) AS p50"
    " FROM responses r JOIN models m ON m.id = r.model_id"
    " WHERE r.captured_at > now() - interval '24 hours'"
    " GROUP BY m.provider),"
    " bad AS ("
    " SELECT m.provider, sum(j.attempts"
    "  - CASE WHEN j.status = 'done' THEN 1 ELSE 0 END) AS n"
    " FROM jobs j JOIN models m ON m.id = j.model_id"
    " WHERE j.updated_at > now() - interval '24 hours'"
    " GROUP BY m.provider) "
    "SELECT m.provider, to_json(array_agg(m.model ORDER BY m.model))"
    " AS models,"
    " coalesce(max(ok.n), 0) > 0 AS active,"
    " (coalesce(max(ok.n), 0) + coalesce(max(bad.n), 0))::int8 AS calls,"
    " coalesce(max(bad.n), 0)::int8 AS errors,"
    " round(coalesce(max(bad.n)::numeric / nullif(coalesce(max(ok.n), 0)"
    "   + coalesce(max(bad.n), 0), 0), 0)::numeric, 4) AS error_rate,"
    " NULL::text AS breaker_state,"
    " round(max(ok.p50)::numeric, 1) AS p50_latency_ms "
    "FROM models m LEFT JOIN ok ON ok.provider = m.provider"
    " LEFT JOIN bad ON bad.provider = m.provider "
    "WHERE m.active GROUP BY m.provider ORDER BY m.provider";



static ngx_dr_api_route_t  ngx_dr_api_routes[] = {

    { ngx_string("/healthz"), ngx_null_string, ngx_dr_api_no_args,
      NULL, ngx_dr_health_live, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_HEALTH, 0 },
    { ngx_string("/readyz"), ngx_null_string, ngx_dr_api_no_args,
      NULL, ngx_dr_health_ready, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_HEALTH, 0 },
    { ngx_string("/health"), ngx_null_string, ngx_dr_api_no_args,
      NULL, ngx_dr_health_status, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_HEALTH, 0 },

    { ngx_string("/api/stats"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_stats_sql, NGX_DR_API_NO_PARAMS,
      ngx_dr_api_stats_build, NULL, 0, 1, NGX_DR_GROUP_STATS, 0 },
    { ngx_string("/api/rankings"), ngx_null_string, ngx_dr_api_rankings_args,
      ngx_dr_api_rankings, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 1, NGX_DR_GROUP_RANKINGS, 0 },
    { ngx_string("/api/domains/"), ngx_string("/public"),
      ngx_dr_api_public_args,
      NULL, NULL, ngx_dr_api_public_sql, NGX_DR_API_DOMAIN,
      ngx_dr_api_public_build, NULL, 1, 1, NGX_DR_GROUP_PUBLIC, 0 },
    { ngx_string("/api/domains/"), ngx_string("/competitive"),
      ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_competitive_sql, NGX_DR_API_DOMAIN,
      ngx_dr_api_competitive_build, NULL, 1, 1, NGX_DR_GROUP_COMPETITIVE, 0 },
    { ngx_string("/api/ticker"), ngx_null_string, ngx_dr_api_ticker_args,
      ngx_dr_api_ticker, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 1, NGX_DR_GROUP_TICKER, 0 },
    { ngx_string("/api/categories"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_categories_sql, NGX_DR_API_NO_PARAMS,
      ngx_dr_api_list_build, "categories", 0, 1, NGX_DR_GROUP_CATEGORIES, 0 },
    { ngx_string("/api/shadows"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_shadows_sql, NGX_DR_API_NO_PARAMS,
      ngx_dr_api_list_build, "declining", 0, 1, NGX_DR_GROUP_SHADOWS, 0 },
    { ngx_string("/api/fire-alarm-dashboard"), ngx_null_string,
      ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_fire_alarm_sql, NGX_DR_API_NO_PARAMS,
      ngx_dr_api_fire_alarm_build, NULL, 0, 1, NGX_DR_GROUP_FIRE_ALARM, 0 },
    { ngx_string("/api/drift/"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_history_sql, NGX_DR_API_HISTORY,
      ngx_dr_api_drift_build, NULL, 1, 1, NGX_DR_GROUP_DRIFT, 0 },
    { ngx_string("/api/consensus/"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_history_sql, NGX_DR_API_HISTORY,
      ngx_dr_api_consensus_build, NULL, 1, 1, NGX_DR_GROUP_CONSENSUS, 0 },
    { ngx_string("/api/volatility/"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_history_sql, NGX_DR_API_HISTORY,
      ngx_dr_api_volatility_build, NULL, 1, 1, NGX_DR_GROUP_VOLATILITY, 0 },
    { ngx_string("/api/time-series/"), ngx_null_string, ngx_dr_api_days_args,
      NULL, NULL, ngx_dr_api_history_sql, NGX_DR_API_HISTORY,
      ngx_dr_api_time_series_build, NULL, 1, 1, NGX_DR_GROUP_TIME_SERIES,
      0 },
    { ngx_string("/api/jolt-benchmark/"), ngx_null_string,
      ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_events_jolt_sql, NGX_DR_API_DOMAIN,
      ngx_dr_api_written_build, NULL, 1, 1, NGX_DR_GROUP_JOLT, 0 },
    { ngx_string("/api/domains/"), ngx_string("/seo"), ngx_dr_api_days_args,
      NULL, NULL, ngx_dr_seo_series_sql, NGX_DR_API_HISTORY,
      ngx_dr_api_written_build, NULL, 1, 1, NGX_DR_GROUP_SEO, 0 },
    { ngx_string("/api/providers/health"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_api_providers_sql, NGX_DR_API_NO_PARAMS,
      ngx_dr_api_providers_build, NULL, 0, 1, NGX_DR_GROUP_PROVIDERS, 0 },
    { ngx_string("/api/openapi.json"), ngx_null_string, ngx_dr_api_no_args,
      ngx_dr_api_openapi, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_OPENAPI, 0 },
    { ngx_string("/api/usage"), ngx_null_string, ngx_dr_api_usage_args,
      ngx_dr_api_usage, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_USAGE, 0 },

    /* the accounts: the first three read their own body */
    { ngx_string("/api/auth/register"), ngx_null_string, ngx_dr_api_no_args,
      ngx_dr_api_register, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_OTHER, 1 },
    { ngx_string("/api/auth/login"), ngx_null_string, ngx_dr_api_no_args,
      ngx_dr_api_login, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_OTHER, 1 },
    { ngx_string("/api/auth/password"), ngx_null_string, ngx_dr_api_no_args,
      ngx_dr_api_password, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_OTHER, 1 },
    { ngx_string("/api/auth/me"), ngx_null_string, ngx_dr_api_no_args,
      ngx_dr_api_me, NULL, NULL, NGX_DR_API_NO_PARAMS,
      NULL, NULL, 0, 0, NGX_DR_GROUP_OTHER, 0 },

    /* the intelligence endpoints (ngx_dr_tensor.c) */
    { ngx_string("/api/tensors/"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_tensor_sql, NGX_DR_API_DOMAIN,
      ngx_dr_tensor_build, NULL, 1, 1, NGX_DR_GROUP_PUBLIC, 0 },
    { ngx_string("/api/trends/degradation"), ngx_null_string,
      ngx_dr_api_trends_args,
      NULL, NULL, ngx_dr_tensor_degradation_sql, NGX_DR_API_RUNS,
      ngx_dr_tensor_json_build, NULL, 0, 1, NGX_DR_GROUP_SHADOWS, 0 },
    { ngx_string("/api/trends/improvement"), ngx_null_string,
      ngx_dr_api_trends_args,
      NULL, NULL, ngx_dr_tensor_improvement_sql, NGX_DR_API_RUNS,
      ngx_dr_tensor_json_build, NULL, 0, 1, NGX_DR_GROUP_SHADOWS, 0 },
    { ngx_string("/api/stats/rich"), ngx_null_string, ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_tensor_stats_sql, NGX_DR_API_NO_PARAMS,
      ngx_dr_tensor_json_build, NULL, 0, 1, NGX_DR_GROUP_STATS, 0 },
    { ngx_string("/api/rankings/rich"), ngx_null_string,
      ngx_dr_api_page_args,
      NULL, NULL, ngx_dr_tensor_rankings_sql, NGX_DR_API_PAGE,
      ngx_dr_tensor_json_build, NULL, 0, 1, NGX_DR_GROUP_RANKINGS, 0 },
    { ngx_string("/api/domains/"), ngx_string("/rich"), ngx_dr_api_no_args,
      NULL, NULL, ngx_dr_tensor_domain_sql, NGX_DR_API_DOMAIN,
      ngx_dr_tensor_json_build, NULL, 1, 1, NGX_DR_GROUP_PUBLIC, 0 },

    { ngx_null_string, ngx_null_string, NULL, NULL, NULL, NULL, 0, NULL,
      NULL, 0, 0, NGX_DR_GROUP_OTHER, 0 }
};



/* the router */


ngx_int_t
ngx_dr_api_handler(ngx_http_request_t *r)
{
    u_char              *start, *end;
    ngx_int_t            rc;
    ngx_table_elt_t     *h;
    ngx_dr_api_ctx_t    *ctx;
    ngx_dr_api_route_t  *route;

    static ngx_str_t  allow_key = ngx_string("Allow");
    static ngx_str_t  allow = ngx_string("GET, HEAD, OPTIONS");

    if (r->err_status) {
        /* reached through error_page: the error of nginx itself */
        return ngx_dr_api_error_page(r);
    }

    route = ngx_dr_api_route(&r->uri, &start, &end);

    if (route->own_body && r->method != NGX_HTTP_OPTIONS) {
        /* it reads its body and answers its methods itself */
        return route->handler(r, NULL);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (route->prefix.len == 0) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no such endpoint; the API is described "
                                 "at /api/openapi.json");
    }

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_dr_http_preflight(r);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_dr_http_header(r, &allow_key, &allow, &h) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_dr_json_error(r, NGX_HTTP_NOT_ALLOWED,
                                 "method_not_allowed",
                                 "this endpoint accepts GET and HEAD only");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_dr_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->route = route;

    if (route->domain) {
        ctx->domain.data = ngx_pnalloc(r->pool, end - start);
        if (ctx->domain.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_dr_validate_domain(start, end - start, ctx->domain.data,
                                    &ctx->domain.len);
        if (rc != NGX_DR_VALID_OK) {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_domain",
                                     "domain: %s",
                                     ngx_dr_validate_reason(rc));
        }
    }

    if (ngx_dr_api_args(r, ctx) != NGX_OK) {
        /* the rejection was sent */
        return ctx->rc;
    }

    if (route->cached && ngx_dr_api_cache_key(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (route->check) {
        return route->check(r);
    }

    if (route->handler) {
        return route->handler(r, ctx);
    }

    return ngx_dr_api_data(r, ctx);
}


/* a data endpoint: its statement with the domain and days it needs */

static ngx_int_t
ngx_dr_api_data(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    int           n;
    u_char       *p;
    const char   *params[3];

    n = 0;

    if (ctx->route->params == NGX_DR_API_RUNS
        || ctx->route->params == NGX_DR_API_PAGE)
    {
        p = ngx_pnalloc(r->pool, 3 * (NGX_INT_T_LEN + 1));
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ctx->route->params == NGX_DR_API_RUNS) {
            params[n++] = (const char *) p;
            p = ngx_sprintf(p, "%ul%Z", ctx->params.runs);

        } else {
            params[n++] = (const char *) p;
            p = ngx_sprintf(p, "%ul%Z", ctx->params.limit);
            params[n++] = (const char *) p;
            p = ngx_sprintf(p, "%ul%Z",
                            (ctx->params.page - 1) * ctx->params.limit);
        }

        params[n++] = (const char *) p;
        (void) ngx_sprintf(p, "%ul%Z",
                           ctx->route->params == NGX_DR_API_RUNS
                           ? ctx->params.limit : ctx->params.page);

        return ngx_dr_api_serve(r, ctx, ctx->route->sql, n, params,
                                ctx->route->build);
    }

    if (ctx->route->params != NGX_DR_API_NO_PARAMS) {
        params[n++] = (const char *) ngx_dr_cstr(r->pool, &ctx->domain);
    }

    if (ctx->route->params == NGX_DR_API_HISTORY) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* the whole history, unless the endpoint takes "days" */
        (void) ngx_sprintf(p, "%ul%Z",
                           ctx->params.days ? ctx->params.days : 36500);
        params[n++] = (const char *) p;
    }

    return ngx_dr_api_serve(r, ctx, ctx->route->sql, n, params,
                            ctx->route->build);
}


/* the rows of a statement as a list under the route's key */

static json_t *
ngx_dr_api_list_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    return json_pack("{s:o}", ctx->route->list,
                     ngx_dr_api_rows(res, 0, PQnfields(res)));
}


/* the route of a path, and where its {domain} is */

static ngx_dr_api_route_t *
ngx_dr_api_route(ngx_str_t *uri, u_char **start, u_char **end)
{
    ngx_dr_api_route_t  *route;

    *start = NULL;
    *end = NULL;

    for (route = ngx_dr_api_routes; route->prefix.len; route++) {

        if (!route->domain) {
            if (uri->len == route->prefix.len
                && ngx_strncmp(uri->data, route->prefix.data, uri->len) == 0)
            {
                return route;
            }

            continue;
        }

        if (uri->len <= route->prefix.len + route->suffix.len
            || ngx_strncmp(uri->data, route->prefix.data, route->prefix.len)
               != 0)
        {
            continue;
        }

        *start = uri->data + route->prefix.len;
        *end = uri->data + uri->len - route->suffix.len;

        if (route->suffix.len
            && ngx_strncmp(*end, route->suffix.data, route->suffix.len) != 0)
        {
            continue;
        }

        if (ngx_strlchr(*start, *end, '/') == NULL) {
            return route;
        }
    }

    return route;
}


/* the requests the API and admin locations answered, when they are done */

static ngx_int_t
ngx_dr_api_log(ngx_http_request_t *r)
{
    u_char             *start, *end;
    ngx_uint_t          group;
    ngx_msec_int_t      ms;
    ngx_time_t         *tp;
    ngx_dr_loc_conf_t  *dlcf;

    if (r != r->main) {
        return NGX_OK;
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dr_module);

    if (dlcf->admin) {
        group = NGX_DR_GROUP_ADMIN;

    } else if (dlcf->api) {
        group = ngx_dr_api_route(&r->uri, &start, &end)->group;

    } else {
        return NGX_OK;
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    ngx_dr_counters_request(group, r->headers_out.status,
                            (ngx_msec_t) ngx_max(ms, 0));

    return NGX_OK;
}


ngx_int_t
ngx_dr_api_init(ngx_conf_t *cf)
{
    return ngx_dr_http_phase(cf, NGX_HTTP_LOG_PHASE, ngx_dr_api_log);
}


/*
 * nginx's own errors (a request line too long, a malformed request, a body
 * too large) reach the API location through error_page and are answered
 * in JSON like every other error.
 */

static ngx_int_t
ngx_dr_api_error_page(ngx_http_request_t *r)
{
    ngx_uint_t   status;
    const char  *code, *text;

    status = r->err_status;

    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
        code = "bad_request";
        text = "the request is malformed";
        break;

    case NGX_HTTP_NOT_FOUND:
        code = "not_found";
        text = "no such endpoint; the API is described at "
               "/api/openapi.json";
        break;

    case NGX_HTTP_NOT_ALLOWED:
        code = "method_not_allowed";
        text = "this endpoint accepts GET and HEAD only";
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        code = "body_too_large";
        text = "the request body is too large";
        break;

    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
        code = "uri_too_long";
        text = "the request URI is too long";
        break;

    case NGX_HTTP_REQUEST_HEADER_TOO_LARGE:
        code = "headers_too_large";
        text = "the request headers are too large";
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        code = "unavailable";
        text = "the service is unavailable";
        break;

    default:
        if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
            code = "internal_error";
            text = "the server could not answer";

        } else {
            code = "bad_request";
            text = "the request was refused";
        }
    }

    return ngx_dr_json_error(r, status, code, "%s", text);
}


/*
 * Query parameters: every one must be known to the endpoint, given once,
 * correctly percent-encoded and valid; a typo is an error rather than a
 * silently ignored parameter.
 */

static ngx_int_t
ngx_dr_api_args(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    u_char            *p, *last, *amp, *eq;
    ngx_int_t          rc;
    ngx_str_t          name, raw;
    ngx_uint_t         i, given;
    ngx_dr_api_arg_t  *arg;

    given = 0;
    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {
        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        eq = ngx_strlchr(p, amp, '=');

        name.data = p;
        name.len = (eq ? eq : amp) - p;
        raw.data = eq ? eq + 1 : amp;
        raw.len = amp - raw.data;

        p = amp + 1;

        if (name.len == 0 && raw.len == 0) {
            continue;
        }

        for (i = 0, arg = ctx->route->args; arg->name.len; i++, arg++) {
            if (arg->name.len == name.len
                && ngx_strncmp(arg->name.data, name.data, name.len) == 0)
            {
                break;
            }
        }

        if (arg->name.len == 0) {
            /*
             * not a parameter of this endpoint: ignored, as the original
             * API did (clients add cache busters such as "_t"), and no
             * part of the cache key
             */
            continue;
        }

        if (given & (1 << i)) {
            return ngx_dr_api_reject(ctx, r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_parameter",
                                     "%V: given more than once",
                                     &arg->name);
        }

        given |= 1 << i;

        rc = ngx_dr_api_arg_value(r, ctx, arg, &raw);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    for (i = 0, arg = ctx->route->args; arg->name.len; i++, arg++) {
        if (!(given & (1 << i)) && arg->type != NGX_DR_ARG_SEARCH) {
            *ngx_dr_api_num(ctx, arg) = arg->dflt;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_dr_api_arg_value(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    ngx_dr_api_arg_t *arg, ngx_str_t *raw)
{
    int         n, rc;
    ngx_str_t   v;
    ngx_uint_t  k;

    if (ngx_dr_api_unescape(r->pool, raw, &v) != NGX_OK) {
        return ngx_dr_api_reject(ctx, r, NGX_HTTP_BAD_REQUEST,
                                 "invalid_parameter",
                                 "%V: malformed percent-encoding",
                                 &arg->name);
    }

    switch (arg->type) {

    case NGX_DR_ARG_UINT:
        rc = ngx_dr_validate_uint(v.data, v.len, arg->min, arg->max,
                                  ngx_dr_api_num(ctx, arg));
        if (rc != NGX_DR_VALID_OK) {
            return ngx_dr_api_reject(ctx, r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_parameter",
                                     "%V: a whole number from %ul to %ul "
                                     "is needed", &arg->name, arg->min,
                                     arg->max);
        }

        return NGX_OK;

    case NGX_DR_ARG_BOOL:
        rc = ngx_dr_validate_bool(v.data, v.len, &n);
        if (rc != NGX_DR_VALID_OK) {
            return ngx_dr_api_reject(ctx, r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_parameter",
                                     "%V: true or false is needed",
                                     &arg->name);
        }

        *ngx_dr_api_num(ctx, arg) = n;
        return NGX_OK;

    case NGX_DR_ARG_ENUM:
        for (k = 0; arg->values[k]; k++) {
            if (ngx_strlen(arg->values[k]) == v.len
                && ngx_strncmp(arg->values[k], v.data, v.len) == 0)
            {
                *ngx_dr_api_num(ctx, arg) = k;
                return NGX_OK;
            }
        }

        return ngx_dr_api_reject(ctx, r, NGX_HTTP_BAD_REQUEST,
                                 "invalid_parameter",
                                 "%V: one of score, consensus, trend or "
                                 "domain is needed", &arg->name);

    default: /* NGX_DR_ARG_SEARCH */
        rc = ngx_dr_validate_search(v.data, v.len);
        if (rc != NGX_DR_VALID_OK) {
            return ngx_dr_api_reject(ctx, r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_parameter",
                                     "%V: %s", &arg->name,
                                     ngx_dr_validate_reason(rc));
        }

        ctx->params.search = v;
        return NGX_OK;
    }
}


/* sends a 400 and says so: NGX_ERROR, with the answer's code in ctx->rc */

static ngx_int_t
ngx_dr_api_reject(ngx_dr_api_ctx_t *ctx, ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *fmt, ...)
{
    u_char   *last;
    va_list   args;
    u_char    msg[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    last = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    ctx->rc = ngx_dr_json_error(r, status, error, "%*s", last - msg, msg);

    return NGX_ERROR;
}


/* strict percent-decoding of a query value, '+' being a space */

static ngx_int_t
ngx_dr_api_unescape(ngx_pool_t *pool, ngx_str_t *raw, ngx_str_t *out)
{
    u_char  *p, *last, *d;
    u_char   c, h, l;

    out->data = ngx_pnalloc(pool, raw->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    d = out->data;
    last = raw->data + raw->len;

    for (p = raw->data; p < last; p++) {

        if (*p == '+') {
            *d++ = ' ';
            continue;
        }

        if (*p != '%') {
            *d++ = *p;
            continue;
        }

        if (last - p < 3) {
            return NGX_ERROR;
        }

        c = p[1] | 0x20;
        h = (p[1] >= '0' && p[1] <= '9') ? p[1] - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 0xff;
        c = p[2] | 0x20;
        l = (p[2] >= '0' && p[2] <= '9') ? p[2] - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 0xff;

        if (h == 0xff || l == 0xff) {
            return NGX_ERROR;
        }

        *d++ = (u_char) (h << 4 | l);
        p += 2;
    }

    out->len = d - out->data;
    *d = '\0';

    return NGX_OK;
}


/* the canonical request: the same answer has one key however it is asked */

static ngx_int_t
ngx_dr_api_cache_key(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    u_char            *p;
    size_t             len;
    ngx_uint_t         i;
    ngx_dr_api_arg_t  *arg;

    len = ctx->route->prefix.len + ctx->domain.len + ctx->route->suffix.len;

    for (i = 0, arg = ctx->route->args; arg->name.len; i++, arg++) {
        len += arg->name.len + 2 + NGX_INT_T_LEN;
    }

    len += ctx->params.search.len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->key.data = p;

    /* an empty part may have no data: memcpy() from NULL is undefined */

    p = ngx_cpymem(p, ctx->route->prefix.data, ctx->route->prefix.len);

    if (ctx->domain.len) {
        p = ngx_cpymem(p, ctx->domain.data, ctx->domain.len);
    }

    if (ctx->route->suffix.len) {
        p = ngx_cpymem(p, ctx->route->suffix.data, ctx->route->suffix.len);
    }

    for (i = 0, arg = ctx->route->args; arg->name.len; i++, arg++) {
        *p++ = (i == 0) ? '?' : '&';
        p = ngx_cpymem(p, arg->name.data, arg->name.len);
        *p++ = '=';

        if (arg->type == NGX_DR_ARG_SEARCH) {
            if (ctx->params.search.len) {
                p = ngx_cpymem(p, ctx->params.search.data,
                               ctx->params.search.len);
            }

        } else {
            p = ngx_sprintf(p, "%ul", *ngx_dr_api_num(ctx, arg));
        }
    }

    ctx->key.len = p - ctx->key.data;

    return NGX_OK;
}


/* the query path */


/*
 * A data endpoint: a fresh cached answer is sent at once; otherwise the
 * query runs (on a replica when there is one), build() turns its rows into
 * the answer, and a 200 is cached.  When the database cannot answer, a
 * stale cached answer is better than none.
 */

static ngx_int_t
ngx_dr_api_serve(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    const char *sql, int nparams, const char **params,
    ngx_dr_api_build_pt build)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    ctx->build = build;

    if (ngx_dr_request(r) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_dr_request(r)->api = ctx;

    if (ctx->key.len && dmcf->cache.shm_zone
        && ngx_dr_cache_get(&dmcf->cache, &ctx->key, r->pool, &ctx->stale)
           == NGX_OK)
    {
        if (ctx->stale.fresh) {
            return ngx_dr_api_send_entry(r, &ctx->stale);
        }

        ctx->has_stale = 1;
    }

    return ngx_dr_http_query(r, NGX_DR_PG_READ|NGX_DR_PG_PREPARE, 0, sql,
                             nparams, params, ngx_dr_api_built);
}


static ngx_int_t
ngx_dr_api_built(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t                *json;
    ngx_uint_t             status;
    ngx_dr_api_ctx_t      *ctx;
    ngx_dr_main_conf_t    *dmcf;
    ngx_dr_http_cache_t    hc;
    ngx_dr_cache_entry_t   entry;

    ctx = ngx_dr_request(r)->api;
    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    if (q->rc != NGX_DR_PG_OK) {
        if (ctx->has_stale) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "database unavailable, serving a stale answer "
                          "%T s old", ngx_time() - ctx->stale.stored);
            return ngx_dr_api_send_entry(r, &ctx->stale);
        }

        return ngx_dr_http_unavailable(r, q);
    }

    status = NGX_HTTP_OK;

    json = ctx->build(r, ctx, q->res, &status);
    if (json == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cannot build the answer of %V", &r->uri);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&entry, sizeof(ngx_dr_cache_entry_t));

    if (ngx_dr_json_dump(r->pool, json, &entry.body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status != NGX_HTTP_OK) {
        return ngx_dr_http_send(r, status, &entry.body, NULL);
    }

    ngx_dr_cache_etag(&entry.body, entry.etag);
    entry.stored = ngx_time();

    /* the generation seen before the query: a result read before new
     * scores were published is not stored as fresh after them */
    entry.generation = ctx->stale.generation;

    if (ctx->key.len && dmcf->cache.shm_zone) {
        ngx_dr_cache_put(&dmcf->cache, &ctx->key, &entry,
                         r->connection->log);
    }

    ngx_memzero(&hc, sizeof(ngx_dr_http_cache_t));
    hc.etag = entry.etag;
    hc.max_age = dmcf->cache.shm_zone ? dmcf->cache.ttl : 0;
    hc.cacheable = 1;

    return ngx_dr_http_send(r, NGX_HTTP_OK, &entry.body, &hc);
}


static ngx_int_t
ngx_dr_api_send_entry(ngx_http_request_t *r, ngx_dr_cache_entry_t *entry)
{
    time_t                age;
    ngx_dr_main_conf_t   *dmcf;
    ngx_dr_http_cache_t   hc;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    age = ngx_time() - entry->stored;

    ngx_memzero(&hc, sizeof(ngx_dr_http_cache_t));
    hc.etag = entry->etag;
    hc.age = age;
    hc.aged = 1;
    hc.cacheable = 1;
    hc.max_age = (dmcf->cache.ttl > age) ? dmcf->cache.ttl - age : 0;

    return ngx_dr_http_send(r, NGX_HTTP_OK, &entry->body, &hc);
}


ngx_int_t
ngx_dr_api_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || dmcf->cache.shm_zone == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    return ngx_dr_pg_listen("dr_scores", ngx_dr_api_scores_changed,
                            &dmcf->cache);
}


static void
ngx_dr_api_scores_changed(ngx_str_t *channel, ngx_str_t *payload,
    void *data)
{
    ngx_dr_cache_conf_t  *ccf = data;

    ngx_dr_cache_invalidate(ccf);
}


/* dr_cors_origins origin ... | * */

char *
ngx_dr_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_loc_conf_t  *dlcf = conf;

    ngx_str_t   *value, *o;
    ngx_uint_t   i;

    if (dlcf->cors != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    dlcf->cors = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                  sizeof(ngx_str_t));
    if (dlcf->cors == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (!(value[i].len == 1 && value[i].data[0] == '*')
            && ngx_strncmp(value[i].data, "https://", 8) != 0
            && ngx_strncmp(value[i].data, "http://", 7) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" takes origins such as "
                               "https://app.example.com, or *, not \"%V\"",
                               &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        if (value[i].data[value[i].len - 1] == '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": an origin has no path, not even "
                               "\"/\": \"%V\"", &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        o = ngx_array_push(dlcf->cors);
        if (o == NULL) {
            return NGX_CONF_ERROR;
        }

        *o = value[i];
    }

    return NGX_CONF_OK;
}


/* the endpoints */








static ngx_int_t
ngx_dr_api_openapi(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    ngx_str_t            body;
    ngx_dr_http_cache_t  hc;
    u_char               etag[NGX_DR_CACHE_ETAG_LEN];

    body.data = (u_char *) ngx_dr_openapi_json;
    body.len = ngx_dr_openapi_json_len;

    ngx_dr_cache_etag(&body, etag);

    ngx_memzero(&hc, sizeof(ngx_dr_http_cache_t));
    hc.etag = etag;
    hc.max_age = 3600;
    hc.cacheable = 1;

    return ngx_dr_http_send(r, NGX_HTTP_OK, &body, &hc);
}


/* the accounts (ngx_dr_account.c) */

static ngx_int_t
ngx_dr_api_register(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    return ngx_dr_account_register(r);
}


static ngx_int_t
ngx_dr_api_login(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    return ngx_dr_account_login(r);
}


static ngx_int_t
ngx_dr_api_password(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    return ngx_dr_account_password(r);
}


static ngx_int_t
ngx_dr_api_me(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    return ngx_dr_account_me(r);
}


/* GET /api/usage?days=: the caller's own key, never cached */

static ngx_int_t
ngx_dr_api_usage(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    return ngx_dr_report_handler(r, ctx->params.days);
}


/* GET /api/stats */



static json_t *
ngx_dr_api_stats_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    return json_pack("{s:o}", "platform_stats",
                     ngx_dr_api_row(res, 0, 0, PQnfields(res)));
}




/* GET /api/rankings */

/*
 * Without a search the total is the kept count of scored domains and the
 * page is read from the index of its order; a search is answered by the
 * trigram index of the names.
 */

/* the count a scalar subquery: computed once, not once per row */
#define NGX_DR_API_ALL                                                       \
    "(SELECT (SELECT dr_count('scored')) AS n WHERE $1::text IS NULL) t",    \
    " WHERE active AND $1::text IS NULL"

#define NGX_DR_API_SEARCH                                                    \
    "(SELECT count(*) AS n FROM latest_scores"                               \
    " WHERE active AND domain LIKE dr_contains(lower($1))) t",               \
    " WHERE active AND domain LIKE dr_contains(lower($1))"

#define NGX_DR_API_RANKINGS(order, which)                                    \
    NGX_DR_API_RANKINGS_SQL(order, which)

#define NGX_DR_API_RANKINGS_SQL(order, total, where)                         \
    "SELECT t.n AS total, x.domain,"                                         \
    " round(x.score::numeric, 1) AS score, x.trend AS trend,"                \
    " x.models_positive AS \"modelsPositive\","                              \
    " x.models_neutral AS \"modelsNeutral\","                                \
    " x.models_negative AS \"modelsNegative\","                              \
    " CASE WHEN x.computed_at > now() - interval '24 hours' THEN 'fresh'"    \
    "  WHEN x.computed_at > now() - interval '7 days' THEN 'recent'"         \
    "  ELSE 'stale' END AS \"dataFreshness\","                               \
    " to_char(x.computed_at AT TIME ZONE 'UTC', " NGX_DR_API_ISO_TIME       \
    ") AS \"lastUpdated\" "                                                  \
    "FROM " total " "                                                        \
    "LEFT JOIN LATERAL (SELECT domain, score, ai_consensus, trend,"          \
    " models_positive, models_neutral, models_negative, computed_at"         \
    " FROM latest_scores" where " ORDER BY " order                           \
    " LIMIT $2 OFFSET $3) x ON true "                                        \
    "ORDER BY " order

/* by sort, then with a search */
static const char  *ngx_dr_api_rankings_sql[][2] = {
    { NGX_DR_API_RANKINGS("score DESC, domain", NGX_DR_API_ALL),
      NGX_DR_API_RANKINGS("score DESC, domain", NGX_DR_API_SEARCH) },
    { NGX_DR_API_RANKINGS("ai_consensus DESC, domain", NGX_DR_API_ALL),
      NGX_DR_API_RANKINGS("ai_consensus DESC, domain", NGX_DR_API_SEARCH) },
    { NGX_DR_API_RANKINGS("trend DESC, domain", NGX_DR_API_ALL),
      NGX_DR_API_RANKINGS("trend DESC, domain", NGX_DR_API_SEARCH) },
    { NGX_DR_API_RANKINGS("domain", NGX_DR_API_ALL),
      NGX_DR_API_RANKINGS("domain", NGX_DR_API_SEARCH) }
};


static json_t *
ngx_dr_api_rankings_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    int          i, n;
    json_t      *list, *row;
    long long    total;
    ngx_uint_t   limit;

    limit = ctx->params.limit;
    total = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                      PQgetlength(res, 0, 0));

    list = json_array();
    if (list == NULL) {
        return NULL;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        if (PQgetisnull(res, i, 1)) {
            /* a page past the end: the count row alone */
            break;
        }

        row = ngx_dr_api_row(res, i, 1, PQnfields(res));
        if (row == NULL
            || json_object_set_new(row, "trend",
                                   ngx_dr_api_trend(res, i, "trend")) != 0
            || json_array_append_new(list, row) != 0)
        {
            json_decref(list);
            return NULL;
        }
    }

    return json_pack("{s:o, s:I, s:I, s:I}",
                     "domains", list,
                     "totalDomains", (json_int_t) total,
                     "totalPages", (json_int_t) ((total + limit - 1) / limit),
                     "currentPage", (json_int_t) ctx->params.page);
}


static ngx_int_t
ngx_dr_api_rankings(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    u_char       *p;
    const char   *params[3];

    p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN + 2);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = (char *) ctx->params.search.data;
    params[1] = (char *) p;
    p = ngx_sprintf(p, "%ul%Z", ctx->params.limit);
    params[2] = (char *) p;
    (void) ngx_sprintf(p, "%ul%Z",
                       (ctx->params.page - 1) * ctx->params.limit);

    return ngx_dr_api_serve(r, ctx,
                            ngx_dr_api_rankings_sql[ctx->params.sort]
                                [ctx->params.search.data != NULL], 3,
                            params, ngx_dr_api_rankings_build);
}


/* GET /api/domains/{domain}/public */



static const char *
ngx_dr_api_alert_message(const char *type)
{
    if (ngx_strcmp(type, "low_consensus") == 0) {
        return "the models disagree about the brand: consensus is below 40";
    }

    if (ngx_strcmp(type, "declining_memory") == 0) {
        return "the memory score fell by more than 3 points since the "
               "previous run";
    }

    return "fewer than half of the models recognize the brand";
}


static json_t *
ngx_dr_api_public_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    int          pos, neu, neg;
    json_t      *ai, *profile, *freshness, *answer, *alerts, *list, *a;
    size_t       i;
    double       pct;
    const char  *position, *reputation, *level;

    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 2)[0] != 't') {
        return ngx_dr_api_not_found(r, ctx, res, status);
    }

    pct = ngx_dr_api_double(res, 0, "percentile");

    position = (pct >= 90) ? "leader"
               : (pct >= 60) ? "strong"
               : (pct >= 30) ? "established" : "emerging";

    pos = (int) ngx_dr_api_double(res, 0, "models_positive");
    neu = (int) ngx_dr_api_double(res, 0, "models_neutral");
    neg = (int) ngx_dr_api_double(res, 0, "models_negative");

    /* the class with the most models; a tie for the most is "mixed" */

    if (pos > neu && pos > neg) {
        reputation = "positive";

    } else if (neg > pos && neg > neu) {
        reputation = "negative";

    } else if (neu > pos && neu > neg) {
        reputation = "neutral";

    } else {
        reputation = "mixed";
    }

    ai = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:s}",
                   "memory_score", ngx_dr_api_value(res, 0, 3),
                   "ai_consensus", ngx_dr_api_value(res, 0, 4),
                   "cohesion", ngx_dr_api_value(res, 0, 5),
                   "models_tracking", ngx_dr_api_value(res, 0, 6),
                   "response_count", ngx_dr_api_value(res, 0, 7),
                   "trend", ngx_dr_api_trend(res, 0, "trend"),
                   "trend_direction",
                   ngx_dr_api_direction(ngx_dr_api_double(res, 0, "trend")));

    profile = json_pack("{s:o, s:s, s:o, s:s}",
                        "category", ngx_dr_api_value(res, 0, 1),
                        "market_position", position,
                        "key_themes",
                        ngx_dr_api_value(res, 0,
                                         ngx_dr_api_col(res, "key_themes")),
                        "reputation", reputation);

    freshness = json_pack("{s:o, s:o}",
                          "last_updated",
                          ngx_dr_api_value(res, 0,
                                           ngx_dr_api_col(res, "updated_at")),
                          "status",
                          ngx_dr_api_value(res, 0,
                                           ngx_dr_api_col(res, "freshness")));

    answer = json_pack("{s:o, s:o, s:o, s:o}",
                       "domain", ngx_dr_api_value(res, 0, 0),
                       "ai_intelligence", ai,
                       "business_profile", profile,
                       "data_freshness", freshness);

    if (answer == NULL) {
        return NULL;
    }

    if (ctx->params.include_alerts) {
        level = PQgetvalue(res, 0, ngx_dr_api_col(res, "risk_level"));
        alerts = ngx_dr_api_value(res, 0, ngx_dr_api_col(res, "alerts"));
        list = json_array();

        json_array_foreach(alerts, i, a) {
            json_array_append_new(list,
                json_pack("{s:O, s:s, s:s}", "type", a, "severity", level,
                          "message",
                          ngx_dr_api_alert_message(json_string_value(a))));
        }

        json_decref(alerts);
        json_object_set_new(answer, "alerts", list);
    }

    json_object_set_new(answer, "updated_at",
                        ngx_dr_api_value(res, 0,
                                         ngx_dr_api_col(res, "updated_at")));

    return answer;
}




/* GET /api/ticker */

static const char  ngx_dr_api_ticker_sql[] =
    "WITH top AS ("
    " SELECT s.* FROM latest_scores s WHERE s.active"
    " ORDER BY s.score DESC, s.domain LIMIT $1) "
    "SELECT t.n AS total, top.domain,"
    " round(top.score::numeric, 1) AS score,"
    " (SELECT json_agg(round(h.score::numeric, 1) ORDER BY h.computed_at)"
    "   FROM (SELECT score, computed_at FROM regular_domain_scores"
    "         WHERE domain_id = top.domain_id"
    "         ORDER BY computed_at DESC LIMIT 4) h) AS trend,"
    " top.models_positive AS \"modelsPositive\","
    " top.models_neutral AS \"modelsNeutral\","
    " top.models_negative AS \"modelsNegative\" "
    "FROM (SELECT (SELECT dr_count('scored')) AS n) t "
    "LEFT JOIN top ON true ORDER BY top.score DESC, top.domain";


static json_t *
ngx_dr_api_ticker_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    int        i, n;
    double     change;
    json_t    *list, *row, *trend;
    size_t     len;

    list = json_array();
    if (list == NULL) {
        return NULL;
    }

    n = PQntuples(res);

    for (i = 0; i < n && !PQgetisnull(res, i, 1); i++) {
        row = ngx_dr_api_row(res, i, 1, PQnfields(res));
        if (row == NULL) {
            json_decref(list);
            return NULL;
        }

        /* change: the latest score against the one before, in points */

        trend = json_object_get(row, "trend");
        len = json_array_size(trend);
        change = 0;

        if (len >= 2) {
            change = json_number_value(json_array_get(trend, len - 1))
                     - json_number_value(json_array_get(trend, len - 2));
        }

        json_object_set_new(row, "change",
                            json_real(ngx_dr_api_round1(change)));
        json_array_append_new(list, row);
    }

    return json_pack("{s:o, s:I}", "topDomains", list,
                     "totalDomains",
                     (json_int_t) ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                                            PQgetlength(res, 0, 0)));
}


static ngx_int_t
ngx_dr_api_ticker(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx)
{
    u_char      *p;
    const char  *params[1];

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_sprintf(p, "%ul%Z", ctx->params.limit);
    params[0] = (char *) p;

    return ngx_dr_api_serve(r, ctx, ngx_dr_api_ticker_sql, 1, params,
                            ngx_dr_api_ticker_build);
}


/* GET /api/categories */







/* GET /api/shadows: domains whose memory declines */







/* GET /api/fire-alarm-dashboard */



static json_t *
ngx_dr_api_fire_alarm_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    json_t      *list, *row;
    size_t       i;
    json_int_t   alerts;

    list = ngx_dr_api_rows(res, 0, PQnfields(res));
    if (list == NULL) {
        return NULL;
    }

    alerts = 0;

    json_array_foreach(list, i, row) {
        alerts += json_array_size(json_object_get(row,
                                                  "active_alert_types"));
    }

    return json_pack("{s:o, s:I}", "high_risk_domains", list,
                     "total_alerts", alerts);
}




/*
 * The per-domain endpoints share one statement: the domain's history of
 * scores, newest first, with a first row of nulls when it has none.
 */





static json_t *
ngx_dr_api_drift_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    int          i, n;
    json_t      *history;
    double       drift, trend;
    const char  *direction;

    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 1)[0] != 't') {
        return ngx_dr_api_not_found(r, ctx, res, status);
    }

    n = PQntuples(res);
    drift = ngx_dr_api_double(res, 0, "drift_score");
    trend = ngx_dr_api_double(res, 0, "trend");

    /* a change of memory within a point either way is no direction */

    direction = ngx_dr_api_direction(trend);

    history = json_array();

    for (i = n - 1; i >= 0; i--) {
        json_array_append_new(history,
            json_pack("{s:o, s:o, s:o}",
                      "date", ngx_dr_api_value(res, i, 2),
                      "memory_score", ngx_dr_api_value(res, i, 3),
                      "drift_score", ngx_dr_api_value(res, i, 6)));
    }

    return json_pack("{s:o, s:{s:f, s:s, s:s, s:i}, s:o}",
                     "domain", ngx_dr_api_value(res, 0, 0),
                     "drift",
                     "drift_score", drift,
                     "drift_direction", direction,
                     "severity", ngx_dr_score_drift_name(
                                     ngx_dr_score_drift_status(drift)),
                     "periods", n - 1,
                     "historical_trend", history);
}




static json_t *
ngx_dr_api_consensus_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    json_t      *agreement, *divergent, *v;
    double       consensus;
    const char  *model, *level;

    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 1)[0] != 't') {
        return ngx_dr_api_not_found(r, ctx, res, status);
    }

    consensus = ngx_dr_api_double(res, 0, "ai_consensus");

    level = (consensus >= 70) ? "high"
            : (consensus >= 40) ? "moderate" : "low";

    agreement = ngx_dr_api_value(res, 0,
                                 ngx_dr_api_col(res, "model_agreement"));
    divergent = json_array();

    if (agreement == NULL || divergent == NULL) {
        json_decref(agreement);
        json_decref(divergent);
        return NULL;
    }

    /* divergent: agreeing with the others 20 points less than average */

    json_object_foreach(agreement, model, v) {
        if (json_number_value(v) < consensus - 20) {
            json_array_append_new(divergent, json_string(model));
        }
    }

    return json_pack("{s:o, s:{s:f, s:s, s:o, s:o, s:o}}",
                     "domain", ngx_dr_api_value(res, 0, 0),
                     "consensus",
                     "consensus_score", consensus,
                     "agreement_level", level,
                     "model_agreement", agreement,
                     "divergent_models", divergent,
                     "total_models",
                     ngx_dr_api_value(res, 0,
                                      ngx_dr_api_col(res, "models_tracking")));
}




static json_t *
ngx_dr_api_volatility_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    double       volatility;
    const char  *level;

    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 1)[0] != 't') {
        return ngx_dr_api_not_found(r, ctx, res, status);
    }

    volatility = ngx_dr_api_double(res, 0, "volatility");

    level = (volatility < 5) ? "low" : (volatility < 15) ? "moderate"
                                                          : "high";

    return json_pack("{s:o, s:{s:f, s:s, s:o, s:o}}",
                     "domain", ngx_dr_api_value(res, 0, 0),
                     "volatility",
                     "volatility_score", volatility,
                     "volatility_level", level,
                     "trend", ngx_dr_api_trend(res, 0, "trend"),
                     "risk_level",
                     ngx_dr_api_value(res, 0,
                                      ngx_dr_api_col(res, "risk_level")));
}




static json_t *
ngx_dr_api_time_series_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    int      i, in_range;
    json_t  *points;

    if (PQntuples(res) == 0) {
        return ngx_dr_api_not_found(r, ctx, res, status);
    }

    in_range = ngx_dr_api_col(res, "in_range");
    points = json_array();

    for (i = PQntuples(res) - 1; i >= 0; i--) {
        if (PQgetvalue(res, i, in_range)[0] != 't') {
            continue;
        }

        json_array_append_new(points,
            json_pack("{s:o, s:o, s:o, s:o}",
                      "date", ngx_dr_api_value(res, i, 2),
                      "memory_score", ngx_dr_api_value(res, i, 3),
                      "ai_consensus", ngx_dr_api_value(res, i, 4),
                      "response_count", ngx_dr_api_value(res, i, 5)));
    }

    return json_pack("{s:o, s:o, s:o}", "domain",
                     ngx_dr_api_value(res, 0, 0), "points", points,
                     "events", ngx_dr_api_value(res, 0,
                                                ngx_dr_api_col(res, "events")));
}


/*
 * GET /api/jolt-benchmark/{domain}, GET /api/domains/{domain}/seo: the
 * statement wrote the answer (ngx_dr_events.c, ngx_dr_seo.c); no row is
 * an unknown domain
 */

static json_t *
ngx_dr_api_written_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    if (PQntuples(res) == 0) {
        return ngx_dr_api_not_found(r, ctx, res, status);
    }

    return ngx_dr_json_column(res);
}




/* GET /api/domains/{domain}/competitive */



static json_t *
ngx_dr_api_competitive_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    double       pct;
    const char  *grade;

    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 2)[0] != 't') {
        return ngx_dr_api_not_found(r, ctx, res, status);
    }

    pct = ngx_dr_api_round1(ngx_dr_api_double(res, 0, "percentile"));

    grade = (pct >= 90) ? "A+" : (pct >= 75) ? "A" : (pct >= 50) ? "B"
            : (pct >= 25) ? "C" : "D";

    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:f, s:s, s:o}",
                     "domain", ngx_dr_api_value(res, 0, 0),
                     "category", ngx_dr_api_value(res, 0, 1),
                     "score", ngx_dr_api_value(res, 0, 3),
                     "rank", ngx_dr_api_value(res, 0, 4),
                     "total", ngx_dr_api_value(res, 0, 5),
                     "percentile", pct,
                     "grade", grade,
                     "peers", ngx_dr_api_value(res, 0, 7));
}




/*
 * GET /api/providers/health, from what the database knows: answers and
 * failed attempts of the last 24 hours.  The breaker state lives in the
 * crawler's shared memory and is null until the crawler runs here.
 */



static json_t *
ngx_dr_api_providers_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    return json_pack("{s:o}", "providers",
                     ngx_dr_api_rows(res, 0, PQnfields(res)));
}




/* rows to JSON */


static json_t *
ngx_dr_api_not_found(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    u_char  *p;
    u_char   msg[NGX_DR_DOMAIN_MAX + 64];

    *status = NGX_HTTP_NOT_FOUND;

    if (PQntuples(res) == 0) {
        p = ngx_snprintf(msg, sizeof(msg), "unknown domain %V",
                         &ctx->domain);

    } else {
        p = ngx_snprintf(msg, sizeof(msg), "no scores yet for %V",
                         &ctx->domain);
    }

    return json_pack("{s:s, s:s#, s:s#}", "error", "not_found",
                     "message", msg, (int) (p - msg),
                     "detail", msg, (int) (p - msg));
}


/* a change of memory within a point either way is no direction */

static const char *
ngx_dr_api_direction(double trend)
{
    return (trend > 1.0) ? "improving"
           : (trend < -1.0) ? "declining" : "stable";
}


static double
ngx_dr_api_round1(double x)
{
    return (double) (long long) (x * 10 + (x < 0 ? -0.5 : 0.5)) / 10;
}


/* a value in the JSON type its column type calls for */

static json_t *
ngx_dr_api_value(PGresult *res, int row, int col)
{
    char  *v;

    if (col < 0 || PQgetisnull(res, row, col)) {
        return json_null();
    }

    v = PQgetvalue(res, row, col);

    switch (PQftype(res, col)) {

    case 20:    /* int8 */
    case 21:    /* int2 */
    case 23:    /* int4 */
        return json_integer(strtoll(v, NULL, 10));

    case 700:   /* float4 */
    case 701:   /* float8 */
    case 1700:  /* numeric */
        return json_real(strtod(v, NULL));

    case 16:    /* bool */
        return json_boolean(v[0] == 't');

    case 114:   /* json */
    case 3802:  /* jsonb */
        return json_loadb(v, PQgetlength(res, row, col), JSON_DECODE_ANY,
                          NULL);

    default:
        return json_stringn(v, PQgetlength(res, row, col));
    }
}


/* a row as an object of its columns from..to-1, named as in the SQL */

static json_t *
ngx_dr_api_row(PGresult *res, int row, int from, int to)
{
    int      col;
    json_t  *obj;

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    for (col = from; col < to; col++) {
        if (json_object_set_new(obj, PQfname(res, col),
                                ngx_dr_api_value(res, row, col))
            != 0)
        {
            json_decref(obj);
            return NULL;
        }
    }

    return obj;
}


static json_t *
ngx_dr_api_rows(PGresult *res, int from, int to)
{
    int      i;
    json_t  *list;

    list = json_array();
    if (list == NULL) {
        return NULL;
    }

    for (i = 0; i < PQntuples(res); i++) {
        if (json_array_append_new(list, ngx_dr_api_row(res, i, from, to))
            != 0)
        {
            json_decref(list);
            return NULL;
        }
    }

    return list;
}


static int
ngx_dr_api_col(PGresult *res, const char *name)
{
    return PQfnumber(res, name);
}


static double
ngx_dr_api_double(PGresult *res, int row, const char *name)
{
    int  col;

    col = PQfnumber(res, name);

    if (col < 0 || PQgetisnull(res, row, col)) {
        return 0;
    }

    return strtod(PQgetvalue(res, row, col), NULL);
}


/* a trend in points as the original API wrote it: "+2.5%", "±0.0%" */

static json_t *
ngx_dr_api_trend(PGresult *res, int row, const char *name)
{
    char  buf[NGX_DR_SCORE_TREND_LEN];

    (void) ngx_dr_score_trend_format(ngx_dr_api_double(res, row, name), buf,
                                     sizeof(buf));

    return json_string(buf);
}

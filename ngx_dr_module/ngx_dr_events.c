
/*
 * Domain Runner: events and jolts, the news correlation of the original
 * system over the events an operator records (nothing is fetched).
 *
 * POST /admin/events records one; an event of severity dr_jolt_severity
 * or above makes the domain "jolt": a run of the jolt prompts at once,
 * planned again 1, 7 and 30 days later, which the first worker of every
 * crawling node makes when due (once in the cluster: the plan's row is
 * locked by whoever makes it).  GET /api/jolt-benchmark/{domain} compares
 * memory, sentiment and drift before and after each event, over the
 * windows of docs/scoring.md.  The statements are in
 * sql/019_events_tiers_seo.sql.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_periodic.h"
#include "ngx_dr_events.h"
#include "ngx_dr_validate.h"


/* how often the first worker makes the jolt runs that came due */
#define NGX_DR_EVENTS_DUE_INTERVAL  60000

#define NGX_DR_EVENTS_TITLE_MAX     300

/* the days before an event its baseline is taken from, and after it */
#define NGX_DR_EVENTS_BEFORE        "30"
#define NGX_DR_EVENTS_AFTER         "31"


static void ngx_dr_events_due_made(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_events_added(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_events_word(json_t *v, const char **words);


static ngx_dr_periodic_t  ngx_dr_events_due;

/* indexed by NGX_DR_SEVERITY_* */
static const char  *ngx_dr_events_severities[] = {
    "low", "medium", "high", "critical", NULL
};

static const char  *ngx_dr_events_kinds[] = {
    "rebrand", "crisis", "launch", "acquisition", "news", NULL
};


static const char  ngx_dr_events_add_sql[] =
    "SELECT e.id, e.jolt, e.run_id,"
    " to_char(e.created_at AT TIME ZONE 'UTC', " NGX_DR_EVENTS_ISO_TIME "),"
    " to_char($2::timestamptz AT TIME ZONE 'UTC', " NGX_DR_EVENTS_ISO_TIME
    ") "
    "FROM dr_event_add($1, $2::timestamptz, $3, $4, $5, $6, $7, $8::int8,"
    " $9) e";

static const char  ngx_dr_events_list_sql[] =
    "SELECT json_build_object('events', coalesce(json_agg(json_build_object("
    " 'id', e.id, 'domain', e.domain,"
    " 'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC', "
    NGX_DR_EVENTS_ISO_TIME "),"
    " 'kind', e.kind, 'severity', e.severity, 'title', e.title,"
    " 'url', e.url, 'jolt', e.jolt,"
    " 'created_at', to_char(e.created_at AT TIME ZONE 'UTC', "
    NGX_DR_EVENTS_ISO_TIME "),"
    " 'jolt_runs', (SELECT coalesce(json_agg(json_build_object("
    "  'after_days', j.after_days,"
    "  'due_at', to_char(j.due_at AT TIME ZONE 'UTC', "
    NGX_DR_EVENTS_ISO_TIME "),"
    "  'run_id', j.run_id, 'status', r.status)"
    "  ORDER BY j.after_days), '[]')"
    "  FROM jolt_runs j LEFT JOIN runs r ON r.id = j.run_id"
    "  WHERE j.event_id = e.id))"
    " ORDER BY e.occurred_at DESC, e.id DESC), '[]'), 'count', count(*))"
    "::text "
    "FROM (SELECT e.*, d.domain FROM events e"
    " JOIN domains d ON d.id = e.domain_id"
    " WHERE $1::text IS NULL OR d.domain = $1"
    " ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1000) e";

/*
 * Each scored run of the domain, at the time its answers were captured
 * (a rescore does not move it), against each event: the baseline is the
 * runs other than jolt runs of the 30 days before the event (from the
 * event before it at the earliest); the event's window is the 31 days
 * from it (until the next event at the latest), jolt runs included.
 */
const char  ngx_dr_events_jolt_sql[] =
    "WITH d AS (SELECT id, domain FROM domains"
    "  WHERE domain = $1 AND active),"
    " s AS (SELECT s.run_id, r.kind, s.memory_score, s.drift_score,"
    "  (SELECT max(x.captured_at) FROM responses x"
    "   WHERE x.run_id = s.run_id AND x.domain_id = s.domain_id) AS at,"
    "  (SELECT avg((m.v->>'sentiment')::float8)"
    "   FROM jsonb_each(s.details->'models') m(k, v)"
    "   WHERE m.v ? 'sentiment') AS sentiment"
    "  FROM domain_scores s JOIN d ON d.id = s.domain_id"
    "  JOIN runs r ON r.id = s.run_id),"
    " e AS (SELECT e.*,"
    "  greatest(e.occurred_at - interval '" NGX_DR_EVENTS_BEFORE " days',"
    "   coalesce(lag(e.occurred_at) OVER w, '-infinity')) AS since,"
    "  least(e.occurred_at + interval '" NGX_DR_EVENTS_AFTER " days',"
    "   coalesce(lead(e.occurred_at) OVER w, 'infinity')) AS until"
    "  FROM events e JOIN d ON d.id = e.domain_id"
    "  WINDOW w AS (ORDER BY e.occurred_at, e.id)),"
    " f AS (SELECT e.id, b.*, a.*"
    "  FROM e CROSS JOIN LATERAL (SELECT count(*) AS bn,"
    "   avg(memory_score) AS bm, avg(sentiment) AS bs,"
    "   avg(drift_score) AS bd FROM s WHERE s.kind <> 'jolt'"
    "   AND s.at >= e.since AND s.at < e.occurred_at) b"
    "  CROSS JOIN LATERAL (SELECT count(*) AS an,"
    "   avg(memory_score) AS am, avg(sentiment) AS as_,"
    "   avg(drift_score) AS ad FROM s"
    "   WHERE s.at >= e.occurred_at AND s.at < e.until) a) "
    "SELECT json_build_object('domain', d.domain,"
    " 'jolt', EXISTS (SELECT 1 FROM jolt_runs j JOIN e ON e.id = j.event_id"
    "  WHERE j.made_at IS NULL),"
    " 'windows', json_build_object('before_days', " NGX_DR_EVENTS_BEFORE ","
    "  'after_days', " NGX_DR_EVENTS_AFTER "),"
    " 'events', coalesce((SELECT json_agg(json_build_object("
    "  'id', e.id, 'kind', e.kind, 'severity', e.severity,"
    "  'title', e.title, 'jolt', e.jolt,"
    "  'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC', "
    NGX_DR_EVENTS_ISO_TIME "),"
    "  'before', json_build_object('runs', f.bn,"
    "   'memory_score', round(f.bm::numeric, 1),"
    "   'sentiment', round(f.bs::numeric, 3),"
    "   'drift', round(f.bd::numeric, 3)),"
    "  'after', json_build_object('runs', f.an,"
    "   'memory_score', round(f.am::numeric, 1),"
    "   'sentiment', round(f.as_::numeric, 3),"
    "   'drift', round(f.ad::numeric, 3)),"
    "  'change', json_build_object("
    "   'memory_score', round((f.am - f.bm)::numeric, 1),"
    "   'sentiment', round((f.as_ - f.bs)::numeric, 3),"
    "   'drift', round((f.ad - f.bd)::numeric, 3)),"
    "  'runs_after', (SELECT coalesce(json_agg(json_build_object("
    "   'run_id', s.run_id, 'jolt_run', s.kind = 'jolt',"
    "   'captured_at', to_char(s.at AT TIME ZONE 'UTC', "
    NGX_DR_EVENTS_ISO_TIME "),"
    "   'days_after', round((extract(epoch FROM s.at - e.occurred_at)"
    "    / 86400)::numeric, 2),"
    "   'memory_score', round(s.memory_score::numeric, 1),"
    "   'sentiment', round(s.sentiment::numeric, 3),"
    "   'drift', round(s.drift_score::numeric, 3))"
    "   ORDER BY s.at, s.run_id), '[]') FROM s"
    "   WHERE s.at >= e.occurred_at AND s.at < e.until))"
    "  ORDER BY e.occurred_at, e.id)"
    "  FROM e JOIN f ON f.id = e.id), '[]'))::text "
    "FROM d";


ngx_int_t
ngx_dr_events_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || !dmcf->runner || ngx_worker != 0
        || !ngx_dr_pg_configured())
    {
        return NGX_OK;
    }

    ngx_dr_events_due.name = "the jolt runs due";
    ngx_dr_events_due.sql = "SELECT dr_jolt_due()";
    ngx_dr_events_due.interval = NGX_DR_EVENTS_DUE_INTERVAL;
    ngx_dr_events_due.jitter = 1000;
    ngx_dr_events_due.done = ngx_dr_events_due_made;

    ngx_dr_periodic_start(&ngx_dr_events_due, cycle->log,
                          1000 + ngx_random() % 1000);

    return NGX_OK;
}


static void
ngx_dr_events_due_made(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK || PQntuples(q->res) != 1) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "the jolt runs due could not be made; asking again");
        return;
    }

    if (PQgetvalue(q->res, 0, 0)[0] != '0') {
        ngx_log_error(NGX_LOG_NOTICE, q->log, 0, "%s jolt runs made",
                      PQgetvalue(q->res, 0, 0));
    }
}


/* POST /admin/events {domain, occurred_at, kind, severity, title, url?} */

ngx_int_t
ngx_dr_events_add(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body)
{
    int                  rc;
    char                *text;
    u_char              *url, *p;
    ngx_str_t            domain, link;
    json_t              *v;
    ngx_int_t            n;
    const char          *params[9];
    ngx_dr_main_conf_t  *dmcf;

    n = ngx_dr_http_fields(r, body,
                           "domain, occurred_at, kind, severity, title, url");
    if (n != NGX_DECLINED) {
        return n;
    }

    n = ngx_dr_http_body_domain(r, body, &domain);
    if (n != NGX_DECLINED) {
        return n;
    }

    params[0] = (const char *) domain.data;

    v = json_object_get(body, "occurred_at");

    if (!json_is_string(v)
        || ngx_dr_validate_time((u_char *) json_string_value(v),
                                json_string_length(v))
           != NGX_DR_VALID_OK)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "occurred_at: a time such as "
                                 "2026-01-31T12:00:00Z is needed");
    }

    params[1] = json_string_value(v);

    n = ngx_dr_events_word(json_object_get(body, "kind"),
                           ngx_dr_events_kinds);
    if (n == NGX_ERROR) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "kind: rebrand, crisis, launch, acquisition "
                                 "or news is needed");
    }

    params[2] = ngx_dr_events_kinds[n];

    n = ngx_dr_events_word(json_object_get(body, "severity"),
                           ngx_dr_events_severities);
    if (n == NGX_ERROR) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "severity: low, medium, high or critical "
                                 "is needed");
    }

    params[3] = ngx_dr_events_severities[n];

    v = json_object_get(body, "title");

    if (!json_is_string(v)
        || ngx_dr_validate_text((u_char *) json_string_value(v),
                                json_string_length(v),
                                NGX_DR_EVENTS_TITLE_MAX)
           != NGX_DR_VALID_OK)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "title: text of 1 to %d bytes without "
                                 "control characters is needed",
                                 NGX_DR_EVENTS_TITLE_MAX);
    }

    params[4] = json_string_value(v);
    params[5] = NULL;

    v = json_object_get(body, "url");

    if (v && !json_is_null(v)) {
        rc = json_is_string(v)
             ? ngx_dr_validate_link((u_char *) json_string_value(v),
                                    json_string_length(v))
             : NGX_DR_VALID_EMPTY;

        if (rc != NGX_DR_VALID_OK) {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_body",
                                     "url: an http or https link of at most "
                                     "%d bytes is needed: %s",
                                     NGX_DR_LINK_MAX,
                                     ngx_dr_validate_reason(rc));
        }

        /* a scheme is the same in any case: stored as "http" or "https" */
        link.len = json_string_length(v);
        link.data = (u_char *) json_string_value(v);

        url = ngx_dr_cstr(r->pool, &link);
        if (url == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        for (p = url; *p != ':'; p++) {
            *p = ngx_tolower(*p);
        }

        params[5] = (const char *) url;

        /* and answered as stored */
        if (json_object_set_new(body, "url", json_string(params[5])) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    params[6] = ngx_dr_events_severities[dmcf->jolt_severity];

    if (ngx_dr_request_actor(r, &params[7]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the answer repeats what was recorded, waiting in the request */

    if (json_object_set_new(body, "domain", json_string(params[0])) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_dr_request(r)->admin = ngx_pstrdup(r->pool,
        &(ngx_str_t) { ngx_strlen(text) + 1, (u_char *) text });
    free(text);

    if (ngx_dr_request(r)->admin == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_events_add_sql, 9, params,
                             ngx_dr_events_added);
}


static ngx_int_t
ngx_dr_events_added(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t  *answer;

    answer = json_loads((char *) ngx_dr_request(r)->admin, 0, NULL);
    if (answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (q->rc != NGX_DR_PG_OK) {
        json_decref(answer);
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        json_decref(answer);
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "domain: no active domain has this name");
    }

    if (PQgetisnull(q->res, 0, 0)) {
        json_decref(answer);
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "occurred_at: an event that happened is "
                                 "needed, not one to come");
    }

    json_object_set_new(answer, "id",
        json_integer(strtoll(PQgetvalue(q->res, 0, 0), NULL, 10)));
    json_object_set_new(answer, "occurred_at",
                        json_string(PQgetvalue(q->res, 0, 4)));
    json_object_set_new(answer, "jolt",
                        json_boolean(PQgetvalue(q->res, 0, 1)[0] == 't'));
    json_object_set_new(answer, "run_id", PQgetisnull(q->res, 0, 2)
        ? json_null()
        : json_integer(strtoll(PQgetvalue(q->res, 0, 2), NULL, 10)));
    json_object_set_new(answer, "created_at",
                        json_string(PQgetvalue(q->res, 0, 3)));

    if (json_object_get(answer, "url") == NULL) {
        json_object_set_new(answer, "url", json_null());
    }

    return ngx_dr_json_send(r, NGX_HTTP_CREATED, answer);
}


/* GET /admin/events?domain= */

ngx_int_t
ngx_dr_events_list(ngx_http_request_t *r)
{
    ngx_int_t    rc;
    ngx_str_t    domain, arg;
    const char  *params[1];

    params[0] = NULL;

    if (ngx_http_arg(r, (u_char *) "domain", 6, &arg) == NGX_OK) {
        rc = ngx_dr_http_domain(r, arg.data, arg.len, &domain);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        params[0] = (const char *) domain.data;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_events_list_sql, 1, params,
                             ngx_dr_http_written);
}


/* the index of the word v is in words, or NGX_ERROR */

static ngx_int_t
ngx_dr_events_word(json_t *v, const char **words)
{
    ngx_int_t  i;

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    for (i = 0; words[i]; i++) {
        if (ngx_strcmp(json_string_value(v), words[i]) == 0) {
            return i;
        }
    }

    return NGX_ERROR;
}

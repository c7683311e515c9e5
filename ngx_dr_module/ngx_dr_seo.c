
/*
 * Domain Runner: SEO figures (the original's seo-metrics-runner).
 *
 * No network reaches an SEO source from here, and none is pretended: the
 * figures are those an operator imports, one number per (domain, day,
 * metric), with POST /admin/metrics/seo.  GET /api/domains/{domain}/seo
 * shows them beside the memory series, day by day, with each metric's
 * Pearson correlation with the memory score over the days both exist
 * (docs/scoring.md).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <math.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_seo.h"
#include "ngx_dr_validate.h"


#define NGX_DR_SEO_METRICS_MAX   50
#define NGX_DR_SEO_NAME_MAX      63


static ngx_int_t ngx_dr_seo_stored(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_seo_name(const char *name);


static const char  ngx_dr_seo_import_sql[] =
    "WITH d AS (SELECT id FROM domains WHERE domain = $1 AND active),"
    " m AS (INSERT INTO seo_metrics (domain_id, day, name, value)"
    "  SELECT d.id, $2::date, x.key, x.value::text::float8"
    "  FROM d, jsonb_each($3::jsonb) x"
    "  ON CONFLICT (domain_id, name, day) DO UPDATE"
    "  SET value = EXCLUDED.value, imported_at = now() RETURNING 1),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    "  SELECT $4, $5, 'seo.import', $1, jsonb_build_object('date', $2,"
    "  'metrics', $3::jsonb) FROM d) "
    "SELECT (SELECT count(*) FROM m) FROM d";

/*
 * $1 the domain, $2 the days: the memory score of each day (the mean of
 * the runs whose answers were captured that UTC day), the figures of each
 * day, and each metric's correlation with the memory score over the days
 * that have both.
 */
const char  ngx_dr_seo_series_sql[] =
    "WITH d AS (SELECT id, domain FROM domains"
    "  WHERE domain = $1 AND active),"
    " since AS (SELECT (now() AT TIME ZONE 'UTC')::date - $2::int AS day),"
    " mem AS (SELECT x.day, avg(x.memory_score) AS memory FROM ("
    "  SELECT ((SELECT max(r.captured_at) FROM responses r"
    "   WHERE r.run_id = s.run_id AND r.domain_id = s.domain_id)"
    "   AT TIME ZONE 'UTC')::date AS day, s.memory_score"
    "  FROM domain_scores s JOIN d ON d.id = s.domain_id) x, since"
    "  WHERE x.day > since.day GROUP BY x.day),"
    " seo AS (SELECT m.day, m.name, m.value FROM seo_metrics m"
    "  JOIN d ON d.id = m.domain_id, since WHERE m.day > since.day),"
    " days AS (SELECT day FROM mem UNION SELECT day FROM seo),"
    " c AS (SELECT seo.name, count(mem.memory) AS n,"
    "  corr(seo.value, mem.memory) AS r"
    "  FROM seo LEFT JOIN mem ON mem.day = seo.day GROUP BY seo.name) "
    "SELECT json_build_object('domain', d.domain, 'days', $2::int,"
    " 'source', 'imported',"
    " 'series', coalesce((SELECT json_agg(json_build_object("
    "  'date', to_char(days.day, 'YYYY-MM-DD'),"
    "  'memory_score', round(mem.memory::numeric, 1),"
    "  'metrics', coalesce((SELECT json_object_agg(seo.name, seo.value"
    "   ORDER BY seo.name) FROM seo WHERE seo.day = days.day), '{}'))"
    "  ORDER BY days.day) FROM days LEFT JOIN mem ON mem.day = days.day),"
    "  '[]'),"
    " 'correlation', coalesce((SELECT json_object_agg(c.name,"
    "  json_build_object('pearson', round(c.r::numeric, 3), 'days', c.n)"
    "  ORDER BY c.name) FROM c), '{}'))::text "
    "FROM d";


/* POST /admin/metrics/seo {domain, date, metrics: {name: number, ...}} */

ngx_int_t
ngx_dr_seo_import(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body)
{
    char        *text;
    u_char       latest[sizeof("2026-01-31")];
    ngx_tm_t     tm;
    ngx_str_t    domain;
    double       x;
    json_t      *v, *metrics, *m;
    ngx_int_t    n;
    const char  *name, *params[5];

    n = ngx_dr_http_fields(r, body, "domain, date, metrics");
    if (n != NGX_DECLINED) {
        return n;
    }

    n = ngx_dr_http_body_domain(r, body, &domain);
    if (n != NGX_DECLINED) {
        return n;
    }

    params[0] = (const char *) domain.data;

    v = json_object_get(body, "date");

    if (!json_is_string(v)
        || ngx_dr_validate_date((u_char *) json_string_value(v),
                                json_string_length(v))
           != NGX_DR_VALID_OK)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "date: a day such as 2026-01-31 is needed");
    }

    /*
     * figures are of days that were: at most the day that has begun
     * somewhere on Earth (tomorrow in UTC), compared as ISO dates sort
     */
    ngx_gmtime(ngx_time() + 86400, &tm);
    (void) ngx_sprintf(latest, "%4d-%02d-%02d%Z", tm.ngx_tm_year,
                       tm.ngx_tm_mon, tm.ngx_tm_mday);

    if (ngx_strcmp(json_string_value(v), latest) > 0) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "date: a day that has begun is needed, "
                                 "not one to come");
    }

    params[1] = json_string_value(v);

    m = json_object_get(body, "metrics");

    if (!json_is_object(m) || json_object_size(m) == 0
        || json_object_size(m) > NGX_DR_SEO_METRICS_MAX)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "metrics: an object of 1 to %d names and "
                                 "numbers is needed",
                                 NGX_DR_SEO_METRICS_MAX);
    }

    /* the numbers as JSON reals: one type whatever the client wrote */

    metrics = json_object();
    if (metrics == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_foreach(m, name, v) {
        if (ngx_dr_seo_name(name) != NGX_OK) {
            json_decref(metrics);
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_body",
                                     "metrics: a name is a lower-case letter "
                                     "then up to %d lower-case letters, "
                                     "digits or '_'",
                                     NGX_DR_SEO_NAME_MAX - 1);
        }

        x = json_is_number(v) ? json_number_value(v) : NAN;

        if (!isfinite(x) || fabs(x) > 1e15) {
            json_decref(metrics);
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_body",
                                     "metrics: %s: a number of at most 1e15 "
                                     "either way is needed", name);
        }

        json_object_set_new(metrics, name, json_real(x));
    }

    text = json_dumps(metrics, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(metrics);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[2] = (const char *) ngx_pstrdup(r->pool,
                    &(ngx_str_t) { ngx_strlen(text) + 1, (u_char *) text });
    free(text);

    if (params[2] == NULL
        || ngx_dr_request_actor(r, &params[3]) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_seo_import_sql, 5, params,
                             ngx_dr_seo_stored);
}


static ngx_int_t
ngx_dr_seo_stored(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "domain: no active domain has this name");
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK,
        json_pack("{s:I}", "stored",
                  (json_int_t) strtoll(PQgetvalue(q->res, 0, 0), NULL, 10)));
}


/* [a-z][a-z0-9_]{0,62}, as the table's check */

static ngx_int_t
ngx_dr_seo_name(const char *name)
{
    size_t  i;

    if (name[0] < 'a' || name[0] > 'z') {
        return NGX_ERROR;
    }

    for (i = 1; name[i]; i++) {
        if (i >= NGX_DR_SEO_NAME_MAX
            || !((name[i] >= 'a' && name[i] <= 'z')
                 || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}

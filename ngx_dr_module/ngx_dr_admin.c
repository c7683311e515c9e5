
/*
 * Domain Runner: the admin API, for keys of the "admin" tier only,
 * routed by the table ngx_dr_admin_routes: keys (created with their
 * secret shown once, listed without secrets, revoked with a notification
 * to every node), domains, runs (and their dry runs), the rescore, the
 * probe, the providers, the spend budgets, the keys' usage, events, SEO
 * figures, tiers and the domains' facts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_admin.h"
#include "ngx_dr_auth.h"
#include "ngx_dr_keys.h"
#include "ngx_dr_credential.h"
#include "ngx_dr_spend.h"
#include "ngx_dr_facts.h"
#include "ngx_dr_probe.h"
#include "ngx_dr_providers.h"
#include "ngx_dr_report.h"
#include "ngx_dr_rescore.h"
#include "ngx_dr_validate.h"
#include "ngx_dr_events.h"
#include "ngx_dr_seo.h"
#include "ngx_dr_tier.h"


#define NGX_DR_ADMIN_BODY_MAX  65536
#define NGX_DR_ADMIN_GRACE_MAX 2592000    /* a rotation's: 30 days */
#define NGX_DR_ISO_TIME        \
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"


/* what the {id} at the end of a route's path is */
#define NGX_DR_ADMIN_ID_NONE    0
#define NGX_DR_ADMIN_ID_NUMBER  1
#define NGX_DR_ADMIN_ID_DOMAIN  2


typedef ngx_int_t (*ngx_dr_admin_handler_pt)(ngx_http_request_t *r,
    ngx_str_t *id);
typedef ngx_int_t (*ngx_dr_admin_json_pt)(ngx_http_request_t *r,
    ngx_str_t *id, json_t *body);


typedef struct {
    ngx_str_t                 path;     /* '*' where its {id} is */
    ngx_uint_t                methods;
    ngx_uint_t                id;       /* NGX_DR_ADMIN_ID_* */
    ngx_dr_admin_handler_pt   handler;  /* a route without a body */
    ngx_dr_admin_json_pt      json;     /* or one with a JSON body */
    const char               *body;     /* what it is; NULL: may be empty */
    const char               *sql;      /* or a statement of the {id} */
    ngx_dr_http_result_pt     done;     /* and its answer */
    unsigned                  own_body:1;
    unsigned                  audit:1;  /* $2, $3: who acts */
} ngx_dr_admin_route_t;


static ngx_dr_admin_route_t *ngx_dr_admin_route(ngx_http_request_t *r,
    ngx_str_t *id, ngx_uint_t *allowed);
static ngx_int_t ngx_dr_admin_id(ngx_http_request_t *r,
    ngx_dr_admin_route_t *route, ngx_str_t *id);
static ngx_int_t ngx_dr_admin_probe(ngx_http_request_t *r, ngx_str_t *id);
static ngx_int_t ngx_dr_admin_audit(ngx_http_request_t *r, ngx_str_t *id);
static ngx_int_t ngx_dr_admin_audited(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_providers(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_dr_admin_budgets(ngx_http_request_t *r, ngx_str_t *id);
static ngx_int_t ngx_dr_admin_set_budget(ngx_http_request_t *r,
    ngx_str_t *id, json_t *body);
static ngx_int_t ngx_dr_admin_usage(ngx_http_request_t *r, ngx_str_t *id);
static ngx_int_t ngx_dr_admin_events(ngx_http_request_t *r, ngx_str_t *id);
static ngx_int_t ngx_dr_admin_tiers(ngx_http_request_t *r, ngx_str_t *id);
static void ngx_dr_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_dr_admin_create(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);
static ngx_int_t ngx_dr_admin_update(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);
static ngx_int_t ngx_dr_admin_updated(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_rotate(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);
static ngx_int_t ngx_dr_admin_rotated(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_key_fields(ngx_http_request_t *r,
    json_t *body);
static ngx_int_t ngx_dr_admin_check_id(ngx_http_request_t *r,
    ngx_dr_admin_route_t *route, ngx_str_t *id);
static ngx_int_t ngx_dr_admin_add_domains(ngx_http_request_t *r,
    ngx_str_t *id, json_t *body);
static ngx_int_t ngx_dr_admin_domains_added(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_domain_removed(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_create_run(ngx_http_request_t *r,
    ngx_str_t *id, json_t *body);
static ngx_int_t ngx_dr_admin_run_created(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_rescore(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);
static ngx_int_t ngx_dr_admin_run_read(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static u_char *ngx_dr_admin_array(ngx_pool_t *pool, json_t *list,
    ngx_uint_t domains, ngx_str_t *bad);
static ngx_int_t ngx_dr_admin_text(json_t *v, size_t max);
static const char *ngx_dr_admin_domain_reason(ngx_pool_t *pool, json_t *d);
static ngx_int_t ngx_dr_admin_created(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_listed(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_revoked(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_admin_not_allowed(ngx_http_request_t *r,
    ngx_uint_t allowed);
static ngx_uint_t ngx_dr_admin_has_control(u_char *s, size_t len);
static json_t *ngx_dr_admin_row(PGresult *res, int row, int first);


/* domains: the valid ones are added, or made active again */


static const char  ngx_dr_admin_domains_sql[] =
    "WITH input AS (SELECT DISTINCT unnest($1::text[]) AS domain),"
    " ins AS ("
    " INSERT INTO domains (domain, category, cohort, priority)"
    " SELECT domain, $2, $3, coalesce($4::int, 0) FROM input"
    " ON CONFLICT (domain) DO UPDATE"
    " SET active = true, updated_at = now(),"
    "  category = coalesce(EXCLUDED.category, domains.category),"
    "  cohort = coalesce(EXCLUDED.cohort, domains.cohort)"
    " WHERE NOT domains.active"
    " RETURNING 1),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, detail)"
    " SELECT $5, $6, 'domains.add', jsonb_build_object('domains',"
    "  (SELECT jsonb_agg(domain) FROM input), 'category', $2, 'cohort', $3,"
    "  'priority', $4::int, 'added', (SELECT count(*) FROM ins))) "
    "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM input)";

/*
 * A run: one job per active domain, model and prompt of its scope (the
 * domain's tier's, unless models or prompts are given), in the same
 * statement as the run itself.
 */
static const char  ngx_dr_admin_run_create_sql[] =
    "WITH" NGX_DR_TIER_SELECTION ","
    " r AS ("
    " INSERT INTO runs (kind, scope, status, total_jobs)"
    " SELECT 'on_demand', $1::jsonb, 'queued', count(*) FROM sel"
    " HAVING count(*) > 0"
    " RETURNING id, total_jobs),"
    " j AS ("
    " INSERT INTO jobs (run_id, domain_id, model_id, prompt_id)"
    " SELECT r.id, sel.d, sel.m, sel.p FROM r, sel"
    " RETURNING 1),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    " SELECT $6, $7, 'run.create', r.id::text,"
    "  jsonb_build_object('scope', $1::jsonb, 'jobs', r.total_jobs)"
    " FROM r) "
    "SELECT r.id, (SELECT count(*) FROM j) FROM r";

/*
 * A run with jobs to do whose calls a spend budget refused is
 * "budget_exhausted" (r.budget_exhausted names the budget) until one of
 * its calls may go again.
 */
static const char  ngx_dr_admin_run_sql[] =
    "SELECT r.id,"
    " CASE WHEN r.budget_exhausted IS NOT NULL"
    "  AND r.status IN ('queued', 'running')"
    "  AND count(*) FILTER (WHERE j.status IN ('queued', 'failed')) > 0"
    "  THEN 'budget_exhausted' ELSE r.status END,"
    " r.total_jobs,"
    " count(*) FILTER (WHERE j.status = 'done') AS done,"
    " count(*) FILTER (WHERE j.status = 'failed') AS failed,"
    " count(*) FILTER (WHERE j.status = 'dead') AS dead,"
    " count(*) FILTER (WHERE j.status = 'leased') AS in_flight,"
    " count(*) FILTER (WHERE j.status = 'queued') AS queued,"
    " t.i, t.o, t.c::float8,"
    " to_char(r.created_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"
    " to_char(r.started_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"
    " to_char(r.finished_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"
    " extract(epoch FROM now() - r.started_at)::float8,"
    " r.budget_exhausted "
    "FROM runs r LEFT JOIN jobs j ON j.run_id = r.id,"
    /* the tokens and cost of the answers stored so far */
    " LATERAL (SELECT coalesce(sum(input_tokens), 0) AS i,"
    "  coalesce(sum(output_tokens), 0) AS o, coalesce(sum(cost), 0) AS c"
    "  FROM responses WHERE run_id = r.id) t "
    "WHERE r.id = $1 GROUP BY r.id, t.i, t.o, t.c";

/* a key as the admin API shows it: ngx_dr_admin_row() */
#define NGX_DR_ADMIN_KEY_COLUMNS                                             \
    "id, prefix, name, tier,"                                                \
    " to_char(created_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"         \
    " to_char(expires_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"         \
    " to_char(revoked_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"         \
    " to_char(last_used_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"       \
    " owner, note,"                                                          \
    " to_char(rotated_at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"         \
    " to_char(previous_until AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME ")"

#define NGX_DR_ADMIN_KEY_NCOLUMNS  12

static const char  ngx_dr_admin_create_sql[] =
    "WITH k AS ("
    " INSERT INTO api_keys (prefix, secret_hash, name, tier, expires_at,"
    "  secret_version, owner, note)"
    " SELECT $1, decode($2, 'hex'), $3, $4, $5::timestamptz, $8, $9, $10"
    " WHERE $5::timestamptz IS NULL OR $5::timestamptz > now()"
    " RETURNING *),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    " SELECT $6, $7, 'key.create', k.id::text, jsonb_build_object("
    "  'prefix', k.prefix, 'name', k.name, 'tier', k.tier,"
    "  'expires_at', k.expires_at, 'owner', k.owner, 'note', k.note)"
    " FROM k) "
    "SELECT " NGX_DR_ADMIN_KEY_COLUMNS " FROM k";

static const char  ngx_dr_admin_list_sql[] =
    "SELECT " NGX_DR_ADMIN_KEY_COLUMNS " FROM api_keys ORDER BY id";

/*
 * PATCH /admin/keys/{id}: $2 holds the fields to change, checked; a
 * field given as null clears it.  The one row says whether the key is
 * there (a key with an expiry in the past is not changed).
 */
static const char  ngx_dr_admin_update_sql[] =
    "WITH k AS ("
    " UPDATE api_keys SET"
    "  tier = coalesce($2::jsonb->>'tier', tier),"
    "  owner = CASE WHEN $2::jsonb ? 'owner' THEN $2::jsonb->>'owner'"
    "   ELSE owner END,"
    "  note = CASE WHEN $2::jsonb ? 'note' THEN $2::jsonb->>'note'"
    "   ELSE note END,"
    "  expires_at = CASE WHEN $2::jsonb ? 'expires_at'"
    "   THEN ($2::jsonb->>'expires_at')::timestamptz ELSE expires_at END"
    " WHERE id = $1 AND revoked_at IS NULL"
    "  AND (($2::jsonb->>'expires_at') IS NULL"
    "       OR ($2::jsonb->>'expires_at')::timestamptz > now())"
    " RETURNING *),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    " SELECT $3, $4, 'key.update', k.id::text,"
    "  jsonb_build_object('prefix', k.prefix) || $2::jsonb FROM k) "
    "SELECT (SELECT CASE WHEN revoked_at IS NULL THEN 't' ELSE 'r' END"
    "  FROM api_keys WHERE id = $1), k.* "
    "FROM (SELECT " NGX_DR_ADMIN_KEY_COLUMNS " FROM k) k"
    " RIGHT JOIN (SELECT 1) one ON true";

/*
 * POST /admin/keys/{id}/rotate: a new secret; the hash of the current
 * one is kept and accepted until the grace ends ($3 seconds; 0: at
 * once).  A revoked key is not rotated.
 */
static const char  ngx_dr_admin_rotate_sql[] =
    "WITH k AS ("
    " UPDATE api_keys SET previous_hash = secret_hash,"
    "  previous_until = now() + make_interval(secs => $3::int),"
    "  rotated_at = now(), secret_hash = decode($2, 'hex'),"
    "  secret_version = $6"
    " WHERE id = $1 AND revoked_at IS NULL"
    " RETURNING *),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    " SELECT $4, $5, 'key.rotate', k.id::text, jsonb_build_object("
    "  'prefix', k.prefix, 'name', k.name, 'grace_seconds', $3::int)"
    " FROM k) "
    "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1), k.* "
    "FROM (SELECT " NGX_DR_ADMIN_KEY_COLUMNS " FROM k) k"
    " RIGHT JOIN (SELECT 1) one ON true";

static const char  ngx_dr_admin_revoke_sql[] =
    "WITH k AS ("
    " UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
    " WHERE id = $1 RETURNING *),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    " SELECT $2, $3, 'key.revoke', k.id::text, jsonb_build_object("
    "  'prefix', k.prefix, 'name', k.name) FROM k) "
    "SELECT " NGX_DR_ADMIN_KEY_COLUMNS " FROM k";

static const char  ngx_dr_admin_remove_sql[] =
    "WITH d AS ("
    " UPDATE domains SET active = false, updated_at = now()"
    " WHERE domain = $1 AND active RETURNING domain),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target)"
    " SELECT $2, $3, 'domain.remove', d.domain FROM d) "
    "SELECT domain FROM d";

static const char  ngx_dr_admin_audit_sql[] =
    "SELECT id, to_char(at AT TIME ZONE 'UTC', " NGX_DR_ISO_TIME "),"
    " key_id, address, action, target, detail::text "
    "FROM admin_audit"
    " WHERE ($1::timestamptz IS NULL OR at >= $1::timestamptz)"
    "  AND ($2::int8 IS NULL OR key_id = $2::int8) "
    "ORDER BY id DESC LIMIT 1000";


static ngx_dr_admin_route_t  ngx_dr_admin_routes[] = {

    /* path, methods, {id}; handler, or JSON handler and body, or statement
     * and answer; own body, audit */

    { ngx_string("/admin/keys"), NGX_HTTP_GET, NGX_DR_ADMIN_ID_NONE,
      NULL, NULL, NULL, ngx_dr_admin_list_sql, ngx_dr_admin_listed, 0, 0 },
    { ngx_string("/admin/keys"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_admin_create,
      "{\"name\", \"tier\", \"expires_at\"?, \"owner\"?, \"note\"?}",
      NULL, NULL, 0, 0 },
    { ngx_string("/admin/keys/*"), NGX_HTTP_DELETE, NGX_DR_ADMIN_ID_NUMBER,
      NULL, NULL, NULL, ngx_dr_admin_revoke_sql, ngx_dr_admin_revoked,
      0, 1 },
    { ngx_string("/admin/keys/*"), NGX_HTTP_PATCH, NGX_DR_ADMIN_ID_NUMBER,
      NULL, ngx_dr_admin_update,
      "{\"tier\"?, \"owner\"?, \"note\"?, \"expires_at\"?}",
      NULL, NULL, 0, 0 },
    { ngx_string("/admin/keys/*/rotate"), NGX_HTTP_POST,
      NGX_DR_ADMIN_ID_NUMBER, NULL, ngx_dr_admin_rotate,
      "{\"grace_seconds\"}", NULL, NULL, 0, 0 },

    { ngx_string("/admin/domains"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_admin_add_domains,
      "{\"domains\", \"category\"?, \"cohort\"?, \"priority\"?}",
      NULL, NULL, 0, 0 },
    { ngx_string("/admin/domains/*"), NGX_HTTP_DELETE,
      NGX_DR_ADMIN_ID_DOMAIN, NULL, NULL, NULL, ngx_dr_admin_remove_sql,
      ngx_dr_admin_domain_removed, 0, 1 },

    { ngx_string("/admin/runs"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_admin_create_run,
      "{\"domains\"?, \"cohort\"?, \"models\"?, \"prompts\"?,"
      " \"dry_run\"?}",
      NULL, NULL, 0, 0 },
    { ngx_string("/admin/runs/*"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NUMBER, NULL, NULL, NULL, ngx_dr_admin_run_sql,
      ngx_dr_admin_run_read, 0, 0 },

    { ngx_string("/admin/rescore"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_admin_rescore, NULL, NULL, NULL, 0, 0 },
    { ngx_string("/admin/probe"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      ngx_dr_admin_probe, NULL, NULL, NULL, NULL, 1, 0 },
    { ngx_string("/admin/providers"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NONE, ngx_dr_admin_providers, NULL, NULL, NULL, NULL,
      0, 0 },
    { ngx_string("/admin/audit"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NONE, ngx_dr_admin_audit, NULL, NULL, NULL, NULL,
      0, 0 },

    { ngx_string("/admin/budgets"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NONE, ngx_dr_admin_budgets, NULL, NULL, NULL, NULL,
      0, 0 },
    { ngx_string("/admin/budgets"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_admin_set_budget, "{\"scope\", \"period\", \"usd\"}",
      NULL, NULL, 0, 0 },
    { ngx_string("/admin/usage"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NONE, ngx_dr_admin_usage, NULL, NULL, NULL, NULL,
      0, 0 },

    { ngx_string("/admin/events"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NONE, ngx_dr_admin_events, NULL, NULL, NULL, NULL,
      0, 0 },
    { ngx_string("/admin/events"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_events_add,
      "{\"domain\", \"occurred_at\", \"kind\", \"severity\", \"title\","
      " \"url\"?}", NULL, NULL, 0, 0 },
    { ngx_string("/admin/metrics/seo"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_seo_import, "{\"domain\", \"date\", \"metrics\"}",
      NULL, NULL, 0, 0 },
    { ngx_string("/admin/tiers"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NONE, ngx_dr_admin_tiers, NULL, NULL, NULL, NULL,
      0, 0 },
    { ngx_string("/admin/tiers"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_tier_set, "{\"tier\", \"models\"?, \"prompts\"?}",
      NULL, NULL, 0, 0 },
    { ngx_string("/admin/tiers/domains"), NGX_HTTP_POST,
      NGX_DR_ADMIN_ID_NONE, NULL, ngx_dr_tier_assign,
      "{\"domains\", \"tier\"}", NULL, NULL, 0, 0 },
    { ngx_string("/admin/facts"), NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_DR_ADMIN_ID_NONE, ngx_dr_facts_list, NULL, NULL, NULL, NULL,
      0, 0 },
    { ngx_string("/admin/facts"), NGX_HTTP_POST, NGX_DR_ADMIN_ID_NONE,
      NULL, ngx_dr_facts_set, "{\"domain\", \"facts\"}", NULL, NULL,
      0, 0 },

    { ngx_null_string, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0 }
};


ngx_int_t
ngx_dr_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_str_t              id;
    ngx_uint_t             allowed;
    ngx_dr_request_t      *req;
    ngx_dr_admin_route_t  *route;

    req = ngx_dr_request(r);

    if (req == NULL || req->tier == NULL || req->key_id == 0
        || req->tier->name.len != sizeof("admin") - 1
        || ngx_strncmp(req->tier->name.data, "admin", 5) != 0)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_dr_json_error(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                 "the admin API needs a key of the admin "
                                 "tier");
    }

    route = ngx_dr_admin_route(r, &id, &allowed);

    if (route && route->json) {
        /* a JSON body, then the route */
        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r, ngx_dr_admin_body);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (route == NULL || !route->own_body) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (route) {
        return ngx_dr_admin_id(r, route, &id);
    }

    if (allowed) {
        return ngx_dr_admin_not_allowed(r, allowed);
    }

    return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                             "no such admin endpoint");
}


/*
 * The route of the request's path and method; with none, allowed is the
 * methods the path takes (0: no such path).  The {id} of a path that
 * ends in one is in id, not yet checked.
 */

static ngx_dr_admin_route_t *
ngx_dr_admin_route(ngx_http_request_t *r, ngx_str_t *id,
    ngx_uint_t *allowed)
{
    u_char                *star;
    size_t                 head, tail;
    ngx_dr_admin_route_t  *route;

    *allowed = 0;
    ngx_str_null(id);

    for (route = ngx_dr_admin_routes; route->path.len; route++) {

        star = ngx_strlchr(route->path.data,
                           route->path.data + route->path.len, '*');

        if (star == NULL) {
            if (r->uri.len != route->path.len
                || ngx_strncmp(r->uri.data, route->path.data, r->uri.len)
                   != 0)
            {
                continue;
            }

        } else {
            /* the {id} is what lies between the path's head and tail */

            head = star - route->path.data;
            tail = route->path.len - head - 1;

            if (r->uri.len <= head + tail
                || ngx_strncmp(r->uri.data, route->path.data, head) != 0
                || ngx_strncmp(r->uri.data + r->uri.len - tail, star + 1,
                               tail)
                   != 0
                || ngx_strlchr(r->uri.data + head,
                               r->uri.data + r->uri.len - tail, '/'))
            {
                continue;
            }

            id->data = r->uri.data + head;
            id->len = r->uri.len - head - tail;
        }

        *allowed |= route->methods;

        if (r->method & route->methods) {
            return route;
        }

        ngx_str_null(id);
    }

    return NULL;
}


/*
 * The {id} of the path checked (and made a C string): NGX_DECLINED when
 * it is good, else the client is answered 400
 */

static ngx_int_t
ngx_dr_admin_check_id(ngx_http_request_t *r, ngx_dr_admin_route_t *route,
    ngx_str_t *id)
{
    u_char         *domain;
    size_t          len;
    ngx_int_t       rc;
    unsigned long   num;

    switch (route->id) {

    case NGX_DR_ADMIN_ID_NUMBER:
        if (ngx_dr_validate_uint(id->data, id->len, 1,
                                 (unsigned long) NGX_MAX_INT_T_VALUE, &num)
            != NGX_DR_VALID_OK)
        {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_id",
                                     "an id is a whole number");
        }

        id->data = ngx_dr_cstr(r->pool, id);
        if (id->data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        break;

    case NGX_DR_ADMIN_ID_DOMAIN:
        domain = ngx_pnalloc(r->pool, id->len + 1);
        if (domain == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_dr_validate_domain(id->data, id->len, domain, &len);
        if (rc != NGX_DR_VALID_OK) {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_domain", "domain: %s",
                                     ngx_dr_validate_reason(rc));
        }

        domain[len] = '\0';
        id->data = domain;
        id->len = len;
        break;

    default: /* NGX_DR_ADMIN_ID_NONE */
        break;
    }

    return NGX_DECLINED;
}


/* the {id} of the path checked, then the route without a body */

static ngx_int_t
ngx_dr_admin_id(ngx_http_request_t *r, ngx_dr_admin_route_t *route,
    ngx_str_t *id)
{
    int             n;
    ngx_int_t       rc;
    const char     *params[3];

    rc = ngx_dr_admin_check_id(r, route, id);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (route->handler) {
        return route->handler(r, id);
    }

    /* a statement of the {id}, and of who acts when it changes something */

    n = 0;

    if (route->id != NGX_DR_ADMIN_ID_NONE) {
        params[n++] = (const char *) id->data;
    }

    if (route->audit) {
        if (ngx_dr_request_actor(r, &params[n]) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n += 2;
    }

    return ngx_dr_http_query(r, 0, 0, route->sql, n, params, route->done);
}


static ngx_int_t
ngx_dr_admin_not_allowed(ngx_http_request_t *r, ngx_uint_t allowed)
{
    u_char      *p;
    ngx_str_t    value;
    ngx_uint_t   i;

    static ngx_str_t  allow_key = ngx_string("Allow");

    static struct {
        ngx_uint_t   method;
        const char  *name;
    }  methods[] = {
        { NGX_HTTP_GET, "GET" },
        { NGX_HTTP_HEAD, "HEAD" },
        { NGX_HTTP_POST, "POST" },
        { NGX_HTTP_PATCH, "PATCH" },
        { NGX_HTTP_DELETE, "DELETE" }
    };

    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PATCH, DELETE"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = p;

    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (allowed & methods[i].method) {
            p = ngx_sprintf(p, "%s%s", p == value.data ? "" : ", ",
                            methods[i].name);
        }
    }

    value.len = p - value.data;
    *p = '\0';

    if (ngx_dr_http_header(r, &allow_key, &value, NULL) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_json_error(r, NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
                             "this endpoint accepts %V", &value);
}


/* routes without a body */









/* GET /admin/audit?since=<ISO time>&key=<id>: the newest 1,000 actions */

static ngx_int_t
ngx_dr_admin_audit(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_str_t       since, key;
    unsigned long   n;
    const char     *params[2];

    params[0] = NULL;
    params[1] = NULL;

    if (ngx_http_arg(r, (u_char *) "since", 5, &since) == NGX_OK) {
        params[0] = (const char *) ngx_dr_cstr(r->pool, &since);

        if (params[0] == NULL
            || ngx_dr_validate_time(since.data, since.len)
               != NGX_DR_VALID_OK)
        {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_parameter",
                                     "since: a time as "
                                     "2026-01-31T12:00:00Z is needed");
        }
    }

    if (ngx_http_arg(r, (u_char *) "key", 3, &key) == NGX_OK) {
        if (ngx_dr_validate_uint(key.data, key.len, 1,
                                 (unsigned long) NGX_MAX_INT_T_VALUE, &n)
            != NGX_DR_VALID_OK)
        {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_parameter",
                                     "key: a key id is a whole number");
        }

        params[1] = (const char *) ngx_dr_cstr(r->pool, &key);
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_admin_audit_sql, 2, params,
                             ngx_dr_admin_audited);
}


static ngx_int_t
ngx_dr_admin_audited(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    int            i, n;
    json_t        *list, *detail;
    json_error_t   err;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    list = json_array();
    n = PQntuples(q->res);

    for (i = 0; i < n; i++) {
        detail = json_loads(PQgetvalue(q->res, i, 6), 0, &err);

        json_array_append_new(list, json_pack("{s:I, s:s, s:o, s:s?, s:s,"
                                              " s:s?, s:o}",
            "id", (json_int_t) ngx_atoof((u_char *) PQgetvalue(q->res, i, 0),
                                         PQgetlength(q->res, i, 0)),
            "at", PQgetvalue(q->res, i, 1),
            "key_id", PQgetisnull(q->res, i, 2) ? json_null()
                      : json_integer(ngx_atoof(
                            (u_char *) PQgetvalue(q->res, i, 2),
                            PQgetlength(q->res, i, 2))),
            "address", PQgetisnull(q->res, i, 3)
                       ? NULL : PQgetvalue(q->res, i, 3),
            "action", PQgetvalue(q->res, i, 4),
            "target", PQgetisnull(q->res, i, 5)
                      ? NULL : PQgetvalue(q->res, i, 5),
            "detail", detail ? detail : json_object()));
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:o, s:i}", "actions", list,
                                      "count", n));
}


static ngx_int_t
ngx_dr_admin_probe(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_dr_probe_handler(r);
}


static ngx_int_t
ngx_dr_admin_providers(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_dr_providers_handler(r);
}


static ngx_int_t
ngx_dr_admin_budgets(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_dr_spend_list(r);
}


static ngx_int_t
ngx_dr_admin_set_budget(ngx_http_request_t *r, ngx_str_t *id, json_t *body)
{
    return ngx_dr_spend_set(r, body);
}


static ngx_int_t
ngx_dr_admin_usage(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_dr_report_admin(r);
}


static ngx_int_t
ngx_dr_admin_events(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_dr_events_list(r);
}


static ngx_int_t
ngx_dr_admin_tiers(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_dr_tier_list(r);
}


/* the body of a route that takes one has arrived */

static void
ngx_dr_admin_body(ngx_http_request_t *r)
{
    json_t                *body;
    ngx_int_t              rc;
    ngx_str_t              text, id;
    ngx_uint_t             allowed;
    json_error_t           err;
    ngx_dr_admin_route_t  *route;

    route = ngx_dr_admin_route(r, &id, &allowed);

    rc = ngx_dr_admin_check_id(r, route, &id);
    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    rc = ngx_dr_http_body(r, NGX_DR_ADMIN_BODY_MAX, &text);

    if (rc == NGX_DECLINED) {
        rc = ngx_dr_json_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                               "body_too_large",
                               "the request body is larger than 64 KiB");
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (text.len == 0 && route->body == NULL) {
        /* no body: the route's default (a rescore of every domain) */
        rc = route->json(r, &id, NULL);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (text.len == 0) {
        rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                               "a JSON object is needed: %s", route->body);
        ngx_http_finalize_request(r, rc);
        return;
    }

    body = json_loadb((char *) text.data, text.len, JSON_REJECT_DUPLICATES,
                      &err);

    if (body == NULL) {
        rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_json",
                               "the body is not valid JSON: %s at "
                               "character %d", err.text, err.position);
        ngx_http_finalize_request(r, rc);
        return;
    }

    rc = route->json(r, &id, body);

    json_decref(body);

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_dr_admin_create(ngx_http_request_t *r, ngx_str_t *id, json_t *body)
{
    json_t               *name, *tier, *expires, *owner, *note;
    ngx_int_t             rc;
    const char           *params[10];
    ngx_dr_request_t     *req;
    ngx_dr_main_conf_t   *dmcf;
    u_char                prefix[9], hex[65];

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    rc = ngx_dr_http_fields(r, body, "name, tier, expires_at, owner, note");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    name = json_object_get(body, "name");
    tier = json_object_get(body, "tier");
    expires = json_object_get(body, "expires_at");
    owner = json_object_get(body, "owner");
    note = json_object_get(body, "note");

    if (!json_is_string(name) || json_string_length(name) == 0
        || json_string_length(name) > 200)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "name: a string of 1 to 200 bytes is "
                                 "needed");
    }

    if (ngx_dr_admin_has_control((u_char *) json_string_value(name),
                                 json_string_length(name)))
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "name: control characters are not "
                                 "allowed");
    }

    if (tier == NULL) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "tier: one of the tiers declared with "
                                 "dr_tier (not anonymous) is needed");
    }

    rc = ngx_dr_admin_key_fields(r, body);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    req = ngx_dr_request(r);
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_dr_auth_new_key(dmcf, r->pool, &req->new_key, prefix, hex)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = (const char *) prefix;
    params[1] = (const char *) hex;
    params[2] = json_string_value(name);
    params[3] = json_string_value(tier);
    params[4] = json_is_string(expires) ? json_string_value(expires) : NULL;

    if (ngx_dr_request_actor(r, &params[5]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[7] = (const char *) dmcf->key_secret.version;
    params[8] = json_is_string(owner) ? json_string_value(owner) : NULL;
    params[9] = json_is_string(note) ? json_string_value(note) : NULL;

    return ngx_dr_http_query(r, 0, 0, ngx_dr_admin_create_sql, 10, params,
                             ngx_dr_admin_created);
}


/*
 * The fields of a key that PATCH changes and POST may set, those that
 * are there: NGX_DECLINED when they are good, else the client is
 * answered 400.  null clears owner, note and expires_at.
 */

static ngx_int_t
ngx_dr_admin_key_fields(ngx_http_request_t *r, json_t *body)
{
    json_t              *tier, *expires, *owner, *note;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    tier = json_object_get(body, "tier");
    expires = json_object_get(body, "expires_at");
    owner = json_object_get(body, "owner");
    note = json_object_get(body, "note");

    if (tier
        && (!json_is_string(tier)
            || ngx_dr_limit_find_tier(&dmcf->limit,
                                      (u_char *) json_string_value(tier),
                                      json_string_length(tier))
               == NULL
            || ngx_strcmp(json_string_value(tier), "anonymous") == 0))
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "tier: one of the tiers declared with "
                                 "dr_tier (not anonymous) is needed");
    }

    if (expires && !json_is_null(expires)
        && (!json_is_string(expires)
            || ngx_dr_validate_time((u_char *) json_string_value(expires),
                                    json_string_length(expires))
               != NGX_DR_VALID_OK))
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "expires_at: a time such as "
                                 "2027-01-31T00:00:00Z is needed");
    }

    if (owner && !json_is_null(owner)
        && (!json_is_string(owner)
            || ngx_dr_credential_email(
                   (const u_char *) json_string_value(owner),
                   json_string_length(owner))
               != NULL))
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "owner: an e-mail address such as "
                                 "name@example.com is needed");
    }

    if (note && !json_is_null(note)
        && (!json_is_string(note) || json_string_length(note) > 1000
            || ngx_dr_admin_has_control((u_char *) json_string_value(note),
                                        json_string_length(note))))
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "note: a string of at most 1000 bytes "
                                 "without control characters is needed");
    }

    return NGX_DECLINED;
}


/* PATCH /admin/keys/{id} {tier?, owner?, note?, expires_at?} */

static ngx_int_t
ngx_dr_admin_update(ngx_http_request_t *r, ngx_str_t *id, json_t *body)
{
    char        *changes;
    u_char      *p;
    size_t       n;
    ngx_int_t    rc;
    const char  *params[4];

    rc = ngx_dr_http_fields(r, body, "tier, owner, note, expires_at");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (json_object_size(body) == 0) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "nothing to change; the fields are tier, "
                                 "owner, note, expires_at");
    }

    rc = ngx_dr_admin_key_fields(r, body);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* the checked fields, as a bound parameter: never SQL */
    changes = json_dumps(body, JSON_COMPACT);
    if (changes == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = ngx_strlen(changes) + 1;
    p = ngx_pnalloc(r->pool, n);
    if (p) {
        ngx_memcpy(p, changes, n);
    }

    free(changes);

    params[0] = (const char *) id->data;
    params[1] = (const char *) p;

    if (p == NULL
        || ngx_dr_request_actor(r, &params[2]) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_admin_update_sql, 4, params,
                             ngx_dr_admin_updated);
}


static ngx_int_t
ngx_dr_admin_updated(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1 || PQgetisnull(q->res, 0, 0)) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no key has this id");
    }

    if (PQgetvalue(q->res, 0, 0)[0] == 'r') {
        /* as a rotation: a revoked key stays as it was revoked */
        return ngx_dr_json_error(r, NGX_HTTP_CONFLICT, "revoked_key",
                                 "a revoked key is not changed");
    }

    if (PQgetisnull(q->res, 0, 1)) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "expires_at: a time in the future is "
                                 "needed");
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK, ngx_dr_admin_row(q->res, 0, 1));
}


/*
 * POST /admin/keys/{id}/rotate {grace_seconds}: the same key (id, tier,
 * usage) with a new secret, shown once; the old one is accepted until
 * the grace ends, on every node (its hash is kept beside the new one)
 */

static ngx_int_t
ngx_dr_admin_rotate(ngx_http_request_t *r, ngx_str_t *id, json_t *body)
{
    json_t              *grace;
    ngx_int_t            rc;
    const char          *params[6];
    ngx_dr_request_t    *req;
    ngx_dr_main_conf_t  *dmcf;
    u_char               prefix[9], hex[65], seconds[NGX_INT_T_LEN + 1];

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    rc = ngx_dr_http_fields(r, body, "grace_seconds");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    grace = json_object_get(body, "grace_seconds");

    if (!json_is_integer(grace) || json_integer_value(grace) < 0
        || json_integer_value(grace) > NGX_DR_ADMIN_GRACE_MAX)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "grace_seconds: a whole number from 0 to "
                                 "%d (30 days) is needed",
                                 NGX_DR_ADMIN_GRACE_MAX);
    }

    req = ngx_dr_request(r);
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the new key's prefix is not used: the key keeps its own */
    if (ngx_dr_auth_new_key(dmcf, r->pool, &req->new_key, prefix, hex)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ngx_sprintf(seconds, "%i", (ngx_int_t) json_integer_value(grace)) = '\0';

    params[0] = (const char *) id->data;
    params[1] = (const char *) hex;
    params[2] = (const char *) seconds;

    if (ngx_dr_request_actor(r, &params[3]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[5] = (const char *) dmcf->key_secret.version;

    return ngx_dr_http_query(r, 0, 0, ngx_dr_admin_rotate_sql, 6, params,
                             ngx_dr_admin_rotated);
}


static ngx_int_t
ngx_dr_admin_rotated(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    u_char            *p;
    json_t            *answer, *prefix;
    ngx_dr_request_t  *req;

    req = ngx_dr_request(r);

    if (q->rc != NGX_DR_PG_OK) {
        ngx_explicit_memzero(req->new_key.data, req->new_key.len);
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1 || PQgetvalue(q->res, 0, 0)[0] != 't') {
        ngx_explicit_memzero(req->new_key.data, req->new_key.len);
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no key has this id");
    }

    if (PQgetisnull(q->res, 0, 1)) {
        ngx_explicit_memzero(req->new_key.data, req->new_key.len);
        return ngx_dr_json_error(r, NGX_HTTP_CONFLICT, "revoked_key",
                                 "a revoked key is not rotated");
    }

    answer = ngx_dr_admin_row(q->res, 0, 1);
    prefix = json_object_get(answer, "prefix");

    if (answer == NULL || !json_is_string(prefix)
        || json_string_length(prefix) != NGX_DR_KEY_PREFIX_LEN)
    {
        json_decref(answer);
        ngx_explicit_memzero(req->new_key.data, req->new_key.len);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the key's own prefix, the new secret: shown this once */
    p = req->new_key.data;
    ngx_memcpy(p + 3, json_string_value(prefix), NGX_DR_KEY_PREFIX_LEN);

    json_object_set_new(answer, "key",
                        json_stringn((char *) p, req->new_key.len));
    ngx_explicit_memzero(p, req->new_key.len);

    return ngx_dr_json_send(r, NGX_HTTP_OK, answer);
}


static ngx_int_t
ngx_dr_admin_created(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t            *answer;
    ngx_dr_request_t  *req;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "expires_at: a time in the future is "
                                 "needed");
    }

    req = ngx_dr_request(r);

    answer = ngx_dr_admin_row(q->res, 0, 0);
    if (answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* shown this once: only its HMAC is kept */
    json_object_set_new(answer, "key",
                        json_stringn((char *) req->new_key.data,
                                     req->new_key.len));
    ngx_explicit_memzero(req->new_key.data, req->new_key.len);

    return ngx_dr_json_send(r, NGX_HTTP_CREATED, answer);
}


static ngx_int_t
ngx_dr_admin_listed(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    int      i;
    json_t  *list;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    list = json_array();

    for (i = 0; list && i < PQntuples(q->res); i++) {
        json_array_append_new(list, ngx_dr_admin_row(q->res, i, 0));
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK, json_pack("{s:o}", "keys", list));
}


static ngx_int_t
ngx_dr_admin_revoked(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no key has this id");
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK, ngx_dr_admin_row(q->res, 0, 0));
}


/* POST /admin/domains {domains[<=1000], category?, cohort?, priority?} */

static ngx_int_t
ngx_dr_admin_add_domains(ngx_http_request_t *r, ngx_str_t *id, json_t *body)
{
    char           *text;
    u_char         *array, *p;
    json_t         *list, *v, *invalid, *d;
    size_t          i;
    ngx_int_t       rc;
    const char     *why, *params[6];
    ngx_uint_t      valid;

    rc = ngx_dr_http_fields(r, body, "domains, category, cohort, priority");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    list = json_object_get(body, "domains");

    if (!json_is_array(list) || json_array_size(list) == 0
        || json_array_size(list) > 1000)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "domains: a list of 1 to 1000 names is "
                                 "needed");
    }

    if (ngx_dr_admin_text(json_object_get(body, "category"), 100) != NGX_OK
        || ngx_dr_admin_text(json_object_get(body, "cohort"), 100) != NGX_OK)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "category and cohort: text of 1 to 100 "
                                 "bytes without control characters");
    }

    v = json_object_get(body, "priority");

    if (v && !(json_is_integer(v) && json_integer_value(v) >= 0
               && json_integer_value(v) <= 10))
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "priority: a whole number from 0 to 10");
    }

    /* the invalid names are answered, the valid ones go to the database */

    invalid = json_array();
    valid = 0;

    json_array_foreach(list, i, d) {
        if (!json_is_string(d)) {
            json_array_append_new(invalid,
                json_pack("{s:n, s:s}", "domain", "reason",
                          "a domain is a string"));
            continue;
        }

        why = ngx_dr_admin_domain_reason(r->pool, d);

        if (why) {
            json_array_append_new(invalid,
                json_pack("{s:O, s:s}", "domain", d, "reason", why));
            continue;
        }

        valid++;
    }

    array = ngx_dr_admin_array(r->pool, list, 1, NULL);
    if (array == NULL) {
        json_decref(invalid);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (valid == 0) {
        return ngx_dr_json_send(r, NGX_HTTP_OK,
                                json_pack("{s:i, s:i, s:o}", "added", 0,
                                          "skipped", 0, "invalid", invalid));
    }

    params[0] = (const char *) array;
    params[1] = json_string_value(json_object_get(body, "category"));
    params[2] = json_string_value(json_object_get(body, "cohort"));

    v = json_object_get(body, "priority");
    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (p == NULL) {
        json_decref(invalid);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_sprintf(p, "%i%Z", v ? (ngx_int_t) json_integer_value(v) : 0);
    params[3] = (const char *) p;

    /* the invalid names wait for the answer in the request's pool */

    text = json_dumps(invalid, JSON_COMPACT);
    json_decref(invalid);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_dr_request(r)->admin = ngx_pstrdup(r->pool,
        &(ngx_str_t) { ngx_strlen(text) + 1, (u_char *) text });
    free(text);

    if (ngx_dr_request(r)->admin == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_dr_request_actor(r, &params[4]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_admin_domains_sql, 6, params,
                             ngx_dr_admin_domains_added);
}


/* why a name is no domain, or NULL */

static const char *
ngx_dr_admin_domain_reason(ngx_pool_t *pool, json_t *d)
{
    int      rc;
    size_t   n;
    u_char  *out;

    out = ngx_pnalloc(pool, json_string_length(d) + 1);
    if (out == NULL) {
        return "out of memory";
    }

    rc = ngx_dr_validate_domain((u_char *) json_string_value(d),
                                json_string_length(d), out, &n);

    return (rc == NGX_DR_VALID_OK) ? NULL : ngx_dr_validate_reason(rc);
}


static ngx_int_t
ngx_dr_admin_domains_added(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t      *invalid;
    json_int_t   added, valid;

    if (q->rc != NGX_DR_PG_OK || PQntuples(q->res) != 1) {
        return ngx_dr_http_unavailable(r, q);
    }

    invalid = json_loads((char *) ngx_dr_request(r)->admin, 0, NULL);

    added = strtoll(PQgetvalue(q->res, 0, 0), NULL, 10);
    valid = strtoll(PQgetvalue(q->res, 0, 1), NULL, 10);

    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:I, s:I, s:o}", "added", added,
                                      "skipped", valid - added,
                                      "invalid", invalid));
}


static ngx_int_t
ngx_dr_admin_domain_removed(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no active domain has this name");
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:s, s:b}", "domain",
                                      PQgetvalue(q->res, 0, 0),
                                      "active", 0));
}


/* POST /admin/runs {domains?, cohort?, models?, prompts?} */

static ngx_int_t
ngx_dr_admin_create_run(ngx_http_request_t *r, ngx_str_t *id, json_t *body)
{
    char        *scope;
    json_t      *v;
    ngx_str_t    bad;
    ngx_int_t    rc;
    ngx_uint_t   dry;
    const char  *key, *params[7];

    rc = ngx_dr_http_fields(r, body,
                            "domains, cohort, models, prompts, dry_run");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    v = json_object_get(body, "dry_run");

    if (v && !json_is_boolean(v)) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "dry_run: true or false");
    }

    dry = json_is_true(v);

    /* the scope is what the run asks, with or without a dry run */
    json_object_del(body, "dry_run");

    params[1] = NULL;
    params[2] = NULL;
    params[3] = NULL;
    params[4] = NULL;

    v = json_object_get(body, "domains");

    if (v) {
        bad.len = 0;
        params[1] = (const char *) ngx_dr_admin_array(r->pool, v, 1, &bad);

        if (!json_is_array(v) || json_array_size(v) == 0
            || json_array_size(v) > 1000 || bad.len || params[1] == NULL)
        {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_body",
                                     "domains: 1 to 1000 valid names");
        }
    }

    v = json_object_get(body, "cohort");

    if (v) {
        if (ngx_dr_admin_text(v, 100) != NGX_OK) {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_body",
                                     "cohort: text of 1 to 100 bytes");
        }

        params[2] = json_string_value(v);
    }

    for (key = "models"; key; key = (key[0] == 'm') ? "prompts" : NULL) {
        v = json_object_get(body, key);

        if (v == NULL) {
            continue;
        }

        bad.len = 0;
        params[key[0] == 'm' ? 3 : 4] =
            (const char *) ngx_dr_admin_array(r->pool, v, 0, &bad);

        if (!json_is_array(v) || json_array_size(v) == 0
            || json_array_size(v) > 100 || bad.len
            || params[key[0] == 'm' ? 3 : 4] == NULL)
        {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_body",
                                     "%s: a list of 1 to 100 names", key);
        }
    }

    scope = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (scope == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = (const char *) ngx_pstrdup(r->pool,
                    &(ngx_str_t) { ngx_strlen(scope) + 1, (u_char *) scope });
    free(scope);

    if (params[0] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (dry) {
        /* what the run would be and cost: nothing is queued */
        return ngx_dr_tier_dry_run(r, params);
    }

    if (ngx_dr_request_actor(r, &params[5]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_admin_run_create_sql, 7, params,
                             ngx_dr_admin_run_created);
}


/* POST /admin/rescore {domains?}; no body is every domain */

static ngx_int_t
ngx_dr_admin_rescore(ngx_http_request_t *r, ngx_str_t *id, json_t *body)
{
    json_t      *v;
    ngx_str_t    bad;
    ngx_int_t    rc;
    const char  *domains;

    domains = NULL;

    if (body == NULL) {
        return ngx_dr_rescore_handler(r, NULL);
    }

    rc = ngx_dr_http_fields(r, body, "domains");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    v = json_object_get(body, "domains");

    if (v) {
        bad.len = 0;
        domains = (const char *) ngx_dr_admin_array(r->pool, v, 1, &bad);

        if (!json_is_array(v) || json_array_size(v) == 0
            || json_array_size(v) > 1000 || bad.len || domains == NULL)
        {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_body",
                                     "domains: 1 to 1000 valid names");
        }
    }

    return ngx_dr_rescore_handler(r, domains);
}


static ngx_int_t
ngx_dr_admin_run_created(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "nothing_to_run",
                                 "no active domain, model and prompt "
                                 "matches the scope");
    }

    return ngx_dr_json_send(r, NGX_HTTP_ACCEPTED,
        json_pack("{s:I, s:I}",
                  "run_id", (json_int_t) strtoll(PQgetvalue(q->res, 0, 0),
                                                 NULL, 10),
                  "jobs", (json_int_t) strtoll(PQgetvalue(q->res, 0, 1),
                                               NULL, 10)));
}


static ngx_int_t
ngx_dr_admin_run_read(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t     *eta, *answer;
    double      elapsed;
    json_int_t  v[10];
    ngx_uint_t  i;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no run has this id");
    }

    for (i = 0; i < 10; i++) {
        v[i] = (i == 1) ? 0 : strtoll(PQgetvalue(q->res, 0, i), NULL, 10);
    }

    /* ETA: the jobs left at the pace of those done since the start */

    eta = json_null();
    elapsed = strtod(PQgetvalue(q->res, 0, 14), NULL);

    if (v[3] > 0 && elapsed > 0 && !PQgetisnull(q->res, 0, 14)) {
        eta = json_integer((json_int_t) ((v[2] - v[3] - v[5]) * elapsed
                                         / v[3]));
    }

    answer = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
                       " s:f, s:o}",
                       "run_id", v[0],
                       "status", PQgetvalue(q->res, 0, 1),
                       "total", v[2], "done", v[3], "failed", v[4],
                       "dead", v[5], "in_flight", v[6], "queued", v[7],
                       "input_tokens", v[8], "output_tokens", v[9],
                       "cost", strtod(PQgetvalue(q->res, 0, 10), NULL),
                       "eta_seconds", eta);

    if (answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 11; i < 14; i++) {
        json_object_set_new(answer, i == 11 ? "created_at"
                                    : i == 12 ? "started_at" : "finished_at",
                            PQgetisnull(q->res, 0, i)
                            ? json_null()
                            : json_string(PQgetvalue(q->res, 0, i)));
    }

    /* "scope/period" of the budget its jobs wait for */
    json_object_set_new(answer, "exhausted_budget",
                        ngx_strcmp(PQgetvalue(q->res, 0, 1),
                                   "budget_exhausted") == 0
                        ? json_string(PQgetvalue(q->res, 0, 15))
                        : json_null());

    return ngx_dr_json_send(r, NGX_HTTP_OK, answer);
}


/*
 * A PostgreSQL array literal of the strings of list; with domains, each is
 * validated and the first bad one is said in *bad.
 */

static u_char *
ngx_dr_admin_array(ngx_pool_t *pool, json_t *list, ngx_uint_t domains,
    ngx_str_t *bad)
{
    int          rc;
    u_char      *s, *p, *name;
    size_t       i, len, n, k;
    json_t      *v;
    const char  *text;

    if (!json_is_array(list)) {
        if (bad) {
            ngx_str_set(bad, "not a list");
        }

        return NULL;
    }

    len = 3;

    json_array_foreach(list, i, v) {
        len += 2 * json_string_length(v) + 3;
    }

    s = ngx_pnalloc(pool, len);
    if (s == NULL) {
        return NULL;
    }

    p = s;
    *p++ = '{';
    n = 0;

    json_array_foreach(list, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > 253)
        {
            if (bad) {
                ngx_str_set(bad, "a name is a string of 1 to 253 bytes");
            }

            if (domains || bad) {
                continue;
            }
        }

        text = json_string_value(v);
        len = json_string_length(v);

        if (domains) {
            name = ngx_pnalloc(pool, len + 1);
            if (name == NULL) {
                return NULL;
            }

            rc = ngx_dr_validate_domain((u_char *) text, len, name, &len);

            if (rc != NGX_DR_VALID_OK) {
                if (bad) {
                    bad->data = (u_char *) ngx_dr_validate_reason(rc);
                    bad->len = ngx_strlen(bad->data);
                }

                continue;
            }

            text = (const char *) name;

        } else if (ngx_dr_admin_has_control((u_char *) text, len)) {
            if (bad) {
                ngx_str_set(bad, "control characters are not allowed");
            }

            continue;
        }

        if (n++) {
            *p++ = ',';
        }

        *p++ = '"';

        for (k = 0; k < len; k++) {
            if (text[k] == '"' || text[k] == '\\') {
                *p++ = '\\';
            }

            *p++ = text[k];
        }

        *p++ = '"';
    }

    *p++ = '}';
    *p = '\0';

    return s;
}


/* absent, or a string of 1 to max bytes without control characters */

static ngx_int_t
ngx_dr_admin_text(json_t *v, size_t max)
{
    if (v == NULL) {
        return NGX_OK;
    }

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > max
        || ngx_dr_admin_has_control((u_char *) json_string_value(v),
                                    json_string_length(v)))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a key of NGX_DR_ADMIN_KEY_COLUMNS, from the column first on */

static json_t *
ngx_dr_admin_row(PGresult *res, int row, int first)
{
    int          i, c;
    json_t      *obj;

    static const char  *names[NGX_DR_ADMIN_KEY_NCOLUMNS] = {
        "id", "prefix", "name", "tier", "created_at", "expires_at",
        "revoked_at", "last_used_at", "owner", "note", "rotated_at",
        "previous_secret_until"
    };

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    for (i = 0; i < NGX_DR_ADMIN_KEY_NCOLUMNS; i++) {
        c = first + i;

        if (PQgetisnull(res, row, c)) {
            json_object_set_new(obj, names[i], json_null());

        } else if (i == 0) {
            json_object_set_new(obj, names[i],
                                json_integer(strtoll(PQgetvalue(res, row, c),
                                                     NULL, 10)));

        } else {
            json_object_set_new(obj, names[i],
                                json_stringn(PQgetvalue(res, row, c),
                                             PQgetlength(res, row, c)));
        }
    }

    return obj;
}


/* C0, DEL or C1 (UTF-8 C2 80..9F) anywhere; jansson made sure of UTF-8 */

static ngx_uint_t
ngx_dr_admin_has_control(u_char *s, size_t len)
{
    return len && ngx_dr_validate_text(s, len, len) == NGX_DR_VALID_CONTROL;
}


/*
 * Domain Runner: tiered crawls.
 *
 * A domain is in the core set, the rotating set (for 30 days, then in the
 * regular one) or the regular tail, or in no tier (crawled in full, as
 * before tiers existed).  Each tier asks its models and its prompts, so
 * that a scheduled run costs what the operator chose; the tables and the
 * rules are in sql/019_events_tiers_seo.sql.  POST /admin/runs with
 * "dry_run" answers what a run would be and cost, without queuing it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_job.h"
#include "ngx_dr_tier.h"
#include "ngx_dr_validate.h"


#define NGX_DR_TIER_NAMES_MAX  100


static ngx_int_t ngx_dr_tier_dry_ran(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_tier_stored(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_tier_name(json_t *v, ngx_uint_t none);
static const char *ngx_dr_tier_names(ngx_http_request_t *r, json_t *v,
    ngx_uint_t domains);


static const char  ngx_dr_tier_list_sql[] =
    "SELECT json_build_object('tiers', json_agg(json_build_object("
    " 'name', t.name,"
    " 'models', (SELECT coalesce(json_agg(m.provider || '/' || m.model"
    "   ORDER BY m.provider, m.model), '[]') FROM models m"
    "   WHERE m.active AND dr_tier_model(t.name, m.id)),"
    " 'all_models', NOT EXISTS (SELECT 1 FROM tier_models x"
    "   WHERE x.tier = t.name),"
    " 'prompts', (SELECT coalesce(json_agg(p.name ORDER BY p.name), '[]')"
    "   FROM prompts p WHERE p.active AND p.kind = 'standard'"
    "   AND dr_tier_prompt(t.name, p.id)),"
    " 'all_prompts', NOT EXISTS (SELECT 1 FROM tier_prompts x"
    "   WHERE x.tier = t.name),"
    " 'domains', (SELECT count(*) FROM domains d"
    "   WHERE d.active AND dr_domain_tier(d.id) = t.name))"
    " ORDER BY array_position(ARRAY['core', 'rotating', 'regular'],"
    " t.name)),"
    " 'untiered_domains', (SELECT count(*) FROM domains d"
    "   WHERE d.active AND dr_domain_tier(d.id) IS NULL))::text "
    "FROM tiers t";

/*
 * A tier's models ($2, given when $3) and prompts ($4, given when $5):
 * a list of names, or NULL for every active one.  An unknown name
 * changes nothing and is answered.  The tier's row is locked first
 * (sql/021): sets posted at once do not mix.
 */
static const char  ngx_dr_tier_set_sql[] =
    "SELECT * FROM dr_tier_set($1, $2::jsonb, $3::bool, $4::jsonb,"
    " $5::bool, $6::int8, $7)";

/* domains ($1, a JSON list) into a tier ($2; NULL: out of every tier) */
static const char  ngx_dr_tier_assign_sql[] =
    "WITH input AS (SELECT DISTINCT x AS domain"
    "  FROM jsonb_array_elements_text($1::jsonb) x),"
    " d AS (SELECT d.id, d.domain FROM domains d JOIN input USING (domain)"
    "  WHERE d.active),"
    " del AS (DELETE FROM domain_tiers t USING d"
    "  WHERE $2::text IS NULL AND t.domain_id = d.id RETURNING 1),"
    " up AS (INSERT INTO domain_tiers (domain_id, tier, assigned_at,"
    "  expires_at)"
    "  SELECT d.id, $2, now(), CASE WHEN $2 = 'rotating'"
    "  THEN now() + interval '30 days' END FROM d WHERE $2 IS NOT NULL"
    "  ON CONFLICT (domain_id) DO UPDATE SET tier = EXCLUDED.tier,"
    "  assigned_at = EXCLUDED.assigned_at,"
    "  expires_at = EXCLUDED.expires_at RETURNING 1),"
    " a AS (INSERT INTO admin_audit (key_id, address, action, target,"
    "  detail)"
    "  SELECT $3, $4, 'tier.assign', coalesce($2, 'none'),"
    "  jsonb_build_object('domains', jsonb_agg(d.domain ORDER BY d.domain))"
    "  FROM d HAVING count(*) > 0) "
    "SELECT json_build_object('tier', $2::text,"
    " 'assigned', (SELECT count(*) FROM d),"
    " 'expires_at', CASE WHEN $2 = 'rotating' THEN to_char((now()"
    "  + interval '30 days') AT TIME ZONE 'UTC',"
    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END,"
    " 'unknown', coalesce((SELECT json_agg(i.domain ORDER BY i.domain)"
    "  FROM input i WHERE i.domain NOT IN (SELECT domain FROM d)),"
    "  '[]'))::text";

/*
 * What a run would ask and cost.  Expected tokens: the prompt at four
 * bytes a token and the frame, and the model's mean answer over its last
 * 100 (the longest answer when it has none); the most it could cost is
 * what the spend budgets reserve for its calls (a token a byte, the
 * longest answer: ngx_dr_job.c).
 */
static const char  ngx_dr_tier_dry_run_sql[] =
    "WITH" NGX_DR_TIER_SELECTION ","
    " mo AS (SELECT m.id, m.input_price_mtok AS pin,"
    "  m.output_price_mtok AS pout,"
    "  coalesce((SELECT avg(x.output_tokens) FROM (SELECT output_tokens"
    "   FROM responses WHERE model_id = m.id AND output_tokens IS NOT NULL"
    "   ORDER BY id DESC LIMIT 100) x), $6::int) AS out"
    "  FROM models m WHERE m.id IN (SELECT DISTINCT sel.m FROM sel)),"
    " j AS (SELECT sel.d, sel.m, sel.p, length(replace(replace(p.template,"
    "  '{domain}', d.domain), '{event}', '')) AS bytes"
    "  FROM sel JOIN prompts p ON p.id = sel.p"
    "  JOIN domains d ON d.id = sel.d) "
    "SELECT json_build_object('dry_run', true, 'scope', $1::jsonb,"
    " 'jobs', count(*), 'domains', count(DISTINCT j.d),"
    " 'models', count(DISTINCT j.m), 'prompts', count(DISTINCT j.p),"
    " 'input_tokens', coalesce(sum((j.bytes + 3) / 4 + $7::int), 0),"
    " 'output_tokens', coalesce(round(sum(mo.out)), 0),"
    " 'estimated_cost', coalesce(round(sum(((j.bytes + 3) / 4 + $7::int)"
    "  * mo.pin + mo.out * mo.pout) / 1000000, 6), 0),"
    " 'max_cost', coalesce(round(sum((j.bytes + $7::int) * mo.pin"
    "  + $6::int * mo.pout) / 1000000, 6), 0))::text "
    "FROM j JOIN mo ON mo.id = j.m "
    "HAVING count(*) > 0";


/* GET /admin/tiers */

ngx_int_t
ngx_dr_tier_list(ngx_http_request_t *r)
{
    return ngx_dr_http_query(r, 0, 0, ngx_dr_tier_list_sql, 0, NULL,
                             ngx_dr_http_written);
}


/* POST /admin/tiers {tier, models?, prompts?} */

ngx_int_t
ngx_dr_tier_set(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body)
{
    json_t      *tier, *v;
    ngx_int_t    rc;
    ngx_uint_t   i;
    const char  *params[7], *key;

    rc = ngx_dr_http_fields(r, body, "tier, models, prompts");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    tier = json_object_get(body, "tier");

    if (ngx_dr_tier_name(tier, 0) != NGX_OK) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "tier: core, rotating or regular is "
                                 "needed");
    }

    params[0] = json_string_value(tier);

    for (i = 0; i < 2; i++) {
        key = i ? "prompts" : "models";
        v = json_object_get(body, key);

        params[1 + 2 * i] = NULL;
        params[2 + 2 * i] = v ? "t" : "f";

        if (v == NULL || json_is_null(v)) {
            continue;
        }

        params[1 + 2 * i] = ngx_dr_tier_names(r, v, 0);

        if (params[1 + 2 * i] == NULL) {
            return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                     "%s: a list of 1 to %d names, or null "
                                     "for every active one", key,
                                     NGX_DR_TIER_NAMES_MAX);
        }
    }

    if (ngx_dr_request_actor(r, &params[5]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_tier_set_sql, 7, params,
                             ngx_dr_tier_stored);
}


/* POST /admin/tiers/domains {domains, tier} */

ngx_int_t
ngx_dr_tier_assign(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body)
{
    json_t      *tier;
    ngx_int_t    rc;
    const char  *params[4];

    rc = ngx_dr_http_fields(r, body, "domains, tier");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    tier = json_object_get(body, "tier");

    if (ngx_dr_tier_name(tier, 1) != NGX_OK) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "tier: core, rotating, regular, or null "
                                 "for none, is needed");
    }

    params[0] = ngx_dr_tier_names(r, json_object_get(body, "domains"), 1);

    if (params[0] == NULL) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "domains: a list of 1 to %d valid names",
                                 NGX_DR_TIER_NAMES_MAX * 10);
    }

    params[1] = json_is_string(tier) ? json_string_value(tier) : NULL;

    if (ngx_dr_request_actor(r, &params[2]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_tier_assign_sql, 4, params,
                             ngx_dr_http_written);
}


/*
 * POST /admin/runs {..., "dry_run": true}: params are those of the run
 * ($1 scope .. $5 prompts); nothing is written.
 */

ngx_int_t
ngx_dr_tier_dry_run(ngx_http_request_t *r, const char **params)
{
    u_char      *p;
    ngx_uint_t   i;
    const char  *all[7];

    for (i = 0; i < 5; i++) {
        all[i] = params[i];
    }

    p = ngx_pnalloc(r->pool, 2 * (NGX_INT_T_LEN + 1));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    all[5] = (const char *) p;
    p = ngx_sprintf(p, "%d%Z", NGX_DR_JOB_MAX_TOKENS);
    all[6] = (const char *) p;
    (void) ngx_sprintf(p, "%d%Z", NGX_DR_JOB_FRAME_TOKENS);

    return ngx_dr_http_query(r, 0, 0, ngx_dr_tier_dry_run_sql, 7, all,
                             ngx_dr_tier_dry_ran);
}


/* a scope of no job is refused as the run itself would be */

static ngx_int_t
ngx_dr_tier_dry_ran(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc == NGX_DR_PG_OK && PQntuples(q->res) == 0) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "nothing_to_run",
                                 "no active domain, model and prompt "
                                 "matches the scope");
    }

    return ngx_dr_http_written(r, q);
}


static ngx_int_t
ngx_dr_tier_stored(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) == 1) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "%s: no active %s is named \"%s\"",
                                 PQgetvalue(q->res, 0, 0),
                                 PQgetvalue(q->res, 0, 0)[0] == 'm'
                                 ? "model" : "standard prompt",
                                 PQgetvalue(q->res, 0, 1));
    }

    /* the tiers as they are now */
    return ngx_dr_tier_list(r);
}


static ngx_int_t
ngx_dr_tier_name(json_t *v, ngx_uint_t none)
{
    const char  *s;

    if (none && json_is_null(v)) {
        return NGX_OK;
    }

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    s = json_string_value(v);

    return (ngx_strcmp(s, "core") == 0 || ngx_strcmp(s, "rotating") == 0
            || ngx_strcmp(s, "regular") == 0) ? NGX_OK : NGX_ERROR;
}


/*
 * A JSON list of names as text for the statement, or NULL when it is no
 * list of valid names; domains are validated and lower-cased.
 */

static const char *
ngx_dr_tier_names(ngx_http_request_t *r, json_t *v, ngx_uint_t domains)
{
    char       *text;
    size_t      i, len;
    u_char     *name;
    json_t     *list, *item;
    ngx_str_t   s;

    if (!json_is_array(v) || json_array_size(v) == 0
        || json_array_size(v) > NGX_DR_TIER_NAMES_MAX * (domains ? 10 : 1))
    {
        return NULL;
    }

    list = json_array();
    if (list == NULL) {
        return NULL;
    }

    json_array_foreach(v, i, item) {
        if (!json_is_string(item)
            || ngx_dr_validate_text((u_char *) json_string_value(item),
                                    json_string_length(item),
                                    NGX_DR_DOMAIN_MAX)
               != NGX_DR_VALID_OK)
        {
            goto failed;
        }

        if (domains) {
            name = ngx_pnalloc(r->pool, json_string_length(item));
            if (name == NULL
                || ngx_dr_validate_domain((u_char *) json_string_value(item),
                                          json_string_length(item), name,
                                          &len)
                   != NGX_DR_VALID_OK)
            {
                goto failed;
            }

            json_array_append_new(list, json_stringn((char *) name, len));

        } else {
            json_array_append(list, item);
        }
    }

    text = json_dumps(list, JSON_COMPACT);
    json_decref(list);

    if (text == NULL) {
        return NULL;
    }

    s.len = ngx_strlen(text) + 1;
    s.data = (u_char *) text;

    name = ngx_pstrdup(r->pool, &s);
    free(text);

    return (const char *) name;

failed:

    json_decref(list);
    return NULL;
}

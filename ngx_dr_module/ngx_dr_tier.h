
/*
 * Domain Runner: tiered crawls: the core, rotating and regular sets of
 * domains, each tier's models and prompts, and what a run would cost.
 */


#ifndef _NGX_DR_TIER_H_INCLUDED_
#define _NGX_DR_TIER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


/*
 * The (domain, model, prompt) of a run of POST /admin/runs, as the CTE
 * "sel": $2 domains, $3 cohort, $4 models, $5 prompts (NULL: any).
 * Without models (prompts) given, each domain's tier chooses them
 * (sql/019_events_tiers_seo.sql); the jolt prompts are for jolt runs only.
 */
#define NGX_DR_TIER_SELECTION                                                 \
    " sel AS ("                                                               \
    " SELECT d.id AS d, m.id AS m, p.id AS p"                                 \
    " FROM domains d"                                                         \
    "  CROSS JOIN LATERAL (SELECT dr_domain_tier(d.id) AS tier) t,"           \
    "  models m, prompts p"                                                   \
    " WHERE d.active AND m.active AND p.active AND p.kind = 'standard'"       \
    "  AND ($2::text[] IS NULL OR d.domain = ANY ($2))"                       \
    "  AND ($3::text IS NULL OR d.cohort = $3)"                               \
    "  AND CASE WHEN $4::text[] IS NULL THEN dr_tier_model(t.tier, m.id)"     \
    "   ELSE m.model = ANY ($4) OR m.provider || '/' || m.model = ANY ($4)"   \
    "   END"                                                                  \
    "  AND CASE WHEN $5::text[] IS NULL THEN dr_tier_prompt(t.tier, p.id)"    \
    "   ELSE p.name = ANY ($5) END)"


ngx_int_t ngx_dr_tier_list(ngx_http_request_t *r);
ngx_int_t ngx_dr_tier_set(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);
ngx_int_t ngx_dr_tier_assign(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);
ngx_int_t ngx_dr_tier_dry_run(ngx_http_request_t *r, const char **params);


#endif /* _NGX_DR_TIER_H_INCLUDED_ */


/*
 * Domain Runner: the intelligence endpoints of the public API, from the
 * stored scores: a brand's tensors (memory, sentiment, grounding, a
 * composite, and the insights and recommendations its figures select),
 * the domains whose memory fell or rose most over the last runs, and the
 * rich variants of the stats, the rankings and a domain, which set the
 * provider tribes (search-enhanced models against base models) side by
 * side.  Every figure and every rule is in docs/scoring.md; the texts
 * are fixed, chosen by thresholds.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <math.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_tensor.h"


#define NGX_DR_TENSOR_ISO_TIME  "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

/* the columns of ngx_dr_tensor_sql */
#define NGX_DR_TENSOR_DOMAIN       0
#define NGX_DR_TENSOR_RUN          1
#define NGX_DR_TENSOR_COMPUTED     2
#define NGX_DR_TENSOR_MEMORY       3
#define NGX_DR_TENSOR_DRIFT        4
#define NGX_DR_TENSOR_PAIRS        5
#define NGX_DR_TENSOR_COHESION     6
#define NGX_DR_TENSOR_MODELS       7
#define NGX_DR_TENSOR_RECOGNIZING  8
#define NGX_DR_TENSOR_CLASSIFIED   9
#define NGX_DR_TENSOR_SENTIMENT    10
#define NGX_DR_TENSOR_GROUNDING    11

/* the composite's weights; absent parts leave theirs out */
#define NGX_DR_TENSOR_W_MEMORY     0.5
#define NGX_DR_TENSOR_W_SENTIMENT  0.2
#define NGX_DR_TENSOR_W_GROUNDING  0.3


/* a brand's figures; a NAN is a figure that cannot be had */
typedef struct {
    double                    memory;
    double                    retention;
    double                    access;
    double                    sentiment;
    double                    mean_sentiment;
    double                    confidence;
    double                    grounding;
    double                    strength;
    json_int_t                facts;
    json_int_t                supported;
    json_int_t                contradicted;
    json_int_t                unmentioned;
} ngx_dr_tensor_t;


/* an insight: when it holds, and what it recommends (NULL: nothing) */
typedef struct {
    const char               *code;
    const char               *text;
    const char               *advice;
    const char               *advice_text;
} ngx_dr_tensor_rule_t;


static void ngx_dr_tensor_grounding(json_t *g, ngx_dr_tensor_t *t);
static json_t *ngx_dr_tensor_advice(ngx_dr_tensor_t *t, json_t **advice);
static json_t *ngx_dr_tensor_num(double x, int places);
static double ngx_dr_tensor_double(PGresult *res, int col);


/* the rules in the order they are listed, docs/scoring.md */
enum {
    NGX_DR_TENSOR_MEMORY_STRONG = 0,
    NGX_DR_TENSOR_MEMORY_WEAK,
    NGX_DR_TENSOR_MEMORY_UNSTABLE,
    NGX_DR_TENSOR_SENTIMENT_POSITIVE,
    NGX_DR_TENSOR_SENTIMENT_NEGATIVE,
    NGX_DR_TENSOR_TONE_DIVIDED,
    NGX_DR_TENSOR_FACTS_CONTRADICTED,
    NGX_DR_TENSOR_WELL_GROUNDED,
    NGX_DR_TENSOR_FACTS_UNSTATED,
    NGX_DR_TENSOR_NO_FACTS,
    NGX_DR_TENSOR_RULES
};

static ngx_dr_tensor_rule_t  ngx_dr_tensor_rules[NGX_DR_TENSOR_RULES] = {
    { "memory_strong", "Most answers recognize the brand.", NULL, NULL },
    { "memory_weak", "Fewer than 40% of the answers recognize the brand.",
      "increase_visibility",
      "Describe the brand plainly where models learn from: its own about "
      "page, reference works and press coverage." },
    { "memory_unstable",
      "The answers changed much since the previous run (retention below "
      "70).",
      "monitor_drift", "Watch the drift of the brand's answers over the "
      "next runs." },
    { "sentiment_positive", "Models describe the brand favourably.",
      NULL, NULL },
    { "sentiment_negative", "Models describe the brand unfavourably.",
      "address_sentiment",
      "Review the negative themes of the answers and the sources that "
      "carry them." },
    { "tone_divided",
      "Models disagree on the brand's tone (confidence below 60).",
      "clarify_positioning",
      "State what the brand is and does in the same words everywhere it "
      "is described." },
    { "facts_contradicted",
      "Some models state facts that contradict the brand's facts.",
      "correct_facts",
      "Correct the contradicted facts at their sources; verified_facts "
      "lists them." },
    { "well_grounded",
      "At least nine in ten of the facts models state about the brand "
      "are true.",
      NULL, NULL },
    { "facts_unstated", "Models rarely state the brand's facts.",
      "state_facts",
      "State the brand's founding, headquarters and category plainly on "
      "its own pages." },
    { "no_facts",
      "No facts were given for the brand: grounding is not measured.",
      "add_facts", "Post the brand's facts (POST /admin/facts) to measure "
      "its grounding." }
};


/*
 * The brand's latest scored run: its figures and the verdicts per model
 * kept with it.  No row: no such domain; a row without a run: no scores.
 */
const char  ngx_dr_tensor_sql[] =
    "WITH d AS (SELECT id, domain FROM domains WHERE domain = $1 AND active),"
    " s AS (SELECT x.* FROM regular_domain_scores x, d WHERE x.domain_id = d.id"
    "  ORDER BY x.computed_at DESC, x.run_id DESC LIMIT 1),"
    " m AS (SELECT count(*) AS models,"
    "  count(*) FILTER (WHERE (e.v->>'recognized')::boolean) AS recognizing,"
    "  count(*) FILTER (WHERE (e.v->>'valid')::int > 0) AS classified,"
    "  avg((e.v->>'sentiment')::float8)"
    "   FILTER (WHERE (e.v->>'valid')::int > 0) AS sentiment"
    "  FROM s CROSS JOIN LATERAL jsonb_each(s.details->'models') e(k, v)) "
    "SELECT d.domain, s.run_id,"
    " to_char(s.computed_at AT TIME ZONE 'UTC', " NGX_DR_TENSOR_ISO_TIME "),"
    " s.memory_score, s.drift_score,"
    " jsonb_array_length(coalesce(s.details->'drift', '[]')), s.cohesion,"
    " m.models, m.recognizing, m.classified, m.sentiment, s.grounding "
    "FROM d LEFT JOIN s ON true LEFT JOIN m ON true";


/* a domain's tribes, from domain_tribal t (sql/018_facts_grounding.sql) */
#define NGX_DR_TENSOR_TRIBAL                                                 \
    "jsonb_build_object('tribes', jsonb_build_object("                       \
    "  'search', jsonb_build_object('models', coalesce(t.search_models, 0),"\
    "   'memory', round(t.search_memory::numeric, 1),"                       \
    "   'sentiment', round(t.search_sentiment::numeric, 3)),"                \
    "  'base', jsonb_build_object('models', coalesce(t.base_models, 0),"    \
    "   'memory', round(t.base_memory::numeric, 1),"                         \
    "   'sentiment', round(t.base_sentiment::numeric, 3))),"                 \
    " 'information_asymmetry', round(t.information_asymmetry::numeric, 1),"  \
    " 'tribal_divergence', round(t.tribal_divergence::numeric, 1),"          \
    " 'memory_lag', t.memory_lag)"


const char  ngx_dr_tensor_domain_sql[] =
    "WITH d AS (SELECT id, domain FROM domains WHERE domain = $1 AND active) "
    "SELECT (jsonb_build_object('domain', d.domain,"
    "  'score', round(s.score::numeric, 1),"
    "  'memory_score', round(s.memory_score::numeric, 1),"
    "  'ai_consensus', round(s.ai_consensus::numeric, 1),"
    "  'run_id', s.run_id,"
    "  'tribe_history', coalesce((SELECT jsonb_agg(jsonb_build_object("
    "   'run_id', h.run_id, 'date', to_char(h.computed_at AT TIME ZONE"
    "   'UTC', " NGX_DR_TENSOR_ISO_TIME "), 'tribe', h.tribe,"
    "   'models', h.models, 'memory', round(h.memory::numeric, 1))"
    "   ORDER BY h.computed_at, h.run_id, h.tribe)"
    "   FROM (SELECT ts.* FROM tribe_scores ts WHERE ts.domain_id = d.id"
    "    AND ts.run_id IN (SELECT x.run_id FROM regular_domain_scores x"
    "     WHERE x.domain_id = d.id"
    "     ORDER BY x.computed_at DESC, x.run_id DESC LIMIT 30)) h), '[]'))"
    " || " NGX_DR_TENSOR_TRIBAL ")::text, d.domain "
    "FROM d JOIN latest_domain_scores s ON s.domain_id = d.id"
    " LEFT JOIN domain_tribal t ON t.domain_id = d.id "
    "UNION ALL "
    "SELECT NULL, d.domain FROM d WHERE NOT EXISTS"
    " (SELECT 1 FROM latest_domain_scores s WHERE s.domain_id = d.id)";


const char  ngx_dr_tensor_stats_sql[] =
    "WITH dt AS (SELECT t.* FROM domain_tribal t"
    "  JOIN domains d ON d.id = t.domain_id AND d.active),"
    " lt AS (SELECT ts.* FROM tribe_scores ts JOIN latest_domain_scores l"
    "  ON l.domain_id = ts.domain_id AND l.run_id = ts.run_id) "
    "SELECT json_build_object("
    " 'platform_stats', json_build_object("
    "  'total_domains', (SELECT count(*) FROM domains WHERE active),"
    "  'average_memory_score', (SELECT round(avg(memory_score)::numeric, 1)"
    "   FROM latest_domain_scores),"
    "  'total_ai_responses', (SELECT count(*) FROM responses),"
    "  'critical_risk_domains', (SELECT count(*) FROM latest_domain_scores"
    "   WHERE risk_level = 'critical'),"
    "  'last_updated', (SELECT to_char(max(computed_at) AT TIME ZONE 'UTC', "
    NGX_DR_TENSOR_ISO_TIME ") FROM latest_domain_scores)),"
    " 'tribes', coalesce((SELECT json_agg(json_build_object("
    "  'tribe', x.tribe, 'models', (SELECT count(*) FROM models mo"
    "   WHERE mo.active AND mo.tribe = x.tribe),"
    "  'domains', x.domains, 'average_memory', x.memory,"
    "  'average_sentiment', x.sentiment) ORDER BY x.tribe)"
    "  FROM (SELECT tribe, count(*) AS domains,"
    "   round(avg(memory)::numeric, 1) AS memory,"
    "   round(avg(sentiment)::numeric, 3) AS sentiment"
    "   FROM lt GROUP BY tribe) x), '[]'),"
    " 'domains_compared', (SELECT count(*) FROM dt"
    "  WHERE information_asymmetry IS NOT NULL),"
    " 'information_asymmetry', (SELECT"
    "  round(avg(information_asymmetry)::numeric, 1) FROM dt),"
    " 'tribal_divergence', (SELECT round(avg(tribal_divergence)::numeric, 1)"
    "  FROM dt),"
    " 'memory_lag', (SELECT round(avg(memory_lag)::numeric, 2) FROM dt))"
    "::text";


const char  ngx_dr_tensor_rankings_sql[] =
    "WITH m AS (SELECT d.domain, s.score, s.memory_score, t.*"
    "  FROM latest_domain_scores s JOIN domains d ON d.id = s.domain_id"
    "  LEFT JOIN domain_tribal t ON t.domain_id = s.domain_id),"
    " n AS (SELECT count(*) AS total FROM m) "
    "SELECT json_build_object('domains', coalesce((SELECT"
    "  json_agg(x.o ORDER BY x.score DESC, x.domain) FROM (SELECT t.score,"
    "  t.domain, jsonb_build_object('domain', t.domain,"
    "   'score', round(t.score::numeric, 1),"
    "   'memory_score', round(t.memory_score::numeric, 1)) || "
    NGX_DR_TENSOR_TRIBAL " AS o"
    "  FROM m t ORDER BY t.score DESC, t.domain LIMIT $1 OFFSET $2) x),"
    "  '[]'),"
    " 'totalDomains', n.total,"
    " 'totalPages', ceil(n.total / $1::numeric)::int,"
    " 'currentPage', $3::int)::text FROM n";


/*
 * The change of memory over a domain's last $1 scored runs: the latest
 * score less the earliest of them; at least two runs are needed.
 */
#define NGX_DR_TENSOR_TRENDS(direction, cmp, order)                          \
    "WITH h AS (SELECT s.domain_id, s.memory_score,"                          \
    "  row_number() OVER (PARTITION BY s.domain_id"                           \
    "   ORDER BY s.computed_at DESC, s.run_id DESC) AS rn"                    \
    "  FROM regular_domain_scores s"                                          \
    "  JOIN domains d ON d.id = s.domain_id"                                  \
    "   AND d.active),"                                                       \
    " w AS (SELECT domain_id, count(*) AS runs,"                              \
    "  (array_agg(memory_score ORDER BY rn))[1] AS cur,"                      \
    "  (array_agg(memory_score ORDER BY rn DESC))[1] AS first"                \
    "  FROM h WHERE rn <= $1 GROUP BY domain_id HAVING count(*) >= 2),"       \
    " x AS (SELECT d.domain, w.* FROM w JOIN domains d ON d.id = w.domain_id"\
    "  WHERE w.cur " cmp " w.first"                                          \
    "  ORDER BY w.cur - w.first " order ", d.domain LIMIT $2) "               \
    "SELECT json_build_object('direction', '" direction "',"                  \
    " 'runs', $1::int, 'domains', coalesce(json_agg(json_build_object("       \
    "  'domain', x.domain, 'current_score', round(x.cur::numeric, 1),"        \
    "  'start_score', round(x.first::numeric, 1),"                            \
    "  'change', round((x.cur - x.first)::numeric, 1), 'runs', x.runs)"       \
    "  ORDER BY x.cur - x.first " order ", x.domain), '[]'))::text FROM x"

const char  ngx_dr_tensor_degradation_sql[] =
    NGX_DR_TENSOR_TRENDS("degradation", "<", "ASC");

const char  ngx_dr_tensor_improvement_sql[] =
    NGX_DR_TENSOR_TRENDS("improvement", ">", "DESC");


json_t *
ngx_dr_tensor_json_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        *status = NGX_HTTP_NOT_FOUND;

        return json_pack("{s:s, s:s, s:s}", "error", "not_found",
                         "message", PQntuples(res) ? "no scores yet"
                                                   : "unknown domain",
                         "detail", PQntuples(res) ? "no scores yet"
                                                  : "unknown domain");
    }

    return json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0,
                      NULL);
}


json_t *
ngx_dr_tensor_build(ngx_http_request_t *r, ngx_dr_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t *status)
{
    double           composite, w, models, classified;
    json_t          *g, *checked, *insights, *advice;
    ngx_dr_tensor_t  t;

    if (PQntuples(res) == 0 || PQgetisnull(res, 0, NGX_DR_TENSOR_RUN)) {
        return ngx_dr_tensor_json_build(r, ctx, res, status);
    }

    t.memory = ngx_dr_tensor_double(res, NGX_DR_TENSOR_MEMORY);

    /* retention: how much of the answers stayed since the previous run */
    t.retention = ngx_dr_tensor_double(res, NGX_DR_TENSOR_PAIRS) > 0
                  ? 100 * (1 - ngx_dr_tensor_double(res, NGX_DR_TENSOR_DRIFT))
                  : NAN;

    models = ngx_dr_tensor_double(res, NGX_DR_TENSOR_MODELS);
    t.access = models > 0
               ? 100 * ngx_dr_tensor_double(res, NGX_DR_TENSOR_RECOGNIZING)
                 / models
               : 0;

    classified = ngx_dr_tensor_double(res, NGX_DR_TENSOR_CLASSIFIED);
    t.mean_sentiment = classified > 0
                       ? ngx_dr_tensor_double(res, NGX_DR_TENSOR_SENTIMENT)
                       : NAN;
    t.sentiment = 50 * (1 + t.mean_sentiment);
    t.confidence = ngx_dr_tensor_double(res, NGX_DR_TENSOR_COHESION);

    g = PQgetisnull(res, 0, NGX_DR_TENSOR_GROUNDING)
        ? NULL
        : json_loadb(PQgetvalue(res, 0, NGX_DR_TENSOR_GROUNDING),
                     PQgetlength(res, 0, NGX_DR_TENSOR_GROUNDING), 0, NULL);

    ngx_dr_tensor_grounding(g, &t);

    checked = json_object_get(g, "checked");
    checked = json_is_array(checked) ? json_incref(checked) : json_array();
    json_decref(g);

    /* the composite of the parts there are */

    composite = NGX_DR_TENSOR_W_MEMORY * t.memory;
    w = NGX_DR_TENSOR_W_MEMORY;

    if (!isnan(t.sentiment)) {
        composite += NGX_DR_TENSOR_W_SENTIMENT * t.sentiment;
        w += NGX_DR_TENSOR_W_SENTIMENT;
    }

    if (!isnan(t.grounding)) {
        composite += NGX_DR_TENSOR_W_GROUNDING * t.grounding;
        w += NGX_DR_TENSOR_W_GROUNDING;
    }

    insights = ngx_dr_tensor_advice(&t, &advice);

    return json_pack("{s:s, s:s, s:I, s:s,"
                     " s:{s:o, s:o, s:o},"
                     " s:{s:o, s:s, s:o},"
                     " s:{s:o, s:o, s:I, s:I, s:I, s:I, s:o},"
                     " s:o, s:o, s:o}",
        "brand", PQgetvalue(res, 0, NGX_DR_TENSOR_DOMAIN),
        "domain", PQgetvalue(res, 0, NGX_DR_TENSOR_DOMAIN),
        "run_id", (json_int_t) strtoll(PQgetvalue(res, 0, NGX_DR_TENSOR_RUN),
                                       NULL, 10),
        "computed_at", PQgetvalue(res, 0, NGX_DR_TENSOR_COMPUTED),
        "memory",
            "score", ngx_dr_tensor_num(t.memory, 1),
            "retention_strength", ngx_dr_tensor_num(t.retention, 1),
            "access_frequency", ngx_dr_tensor_num(t.access, 1),
        "sentiment",
            "score", ngx_dr_tensor_num(t.sentiment, 1),
            "market_sentiment",
                isnan(t.mean_sentiment) ? "unknown"
                : t.mean_sentiment > 0.1 ? "positive"
                : t.mean_sentiment < -0.1 ? "negative" : "neutral",
            "confidence", ngx_dr_tensor_num(t.confidence, 1),
        "grounding",
            "score", ngx_dr_tensor_num(t.grounding, 1),
            "strength", ngx_dr_tensor_num(t.strength, 1),
            "facts", t.facts,
            "supported", t.supported,
            "contradicted", t.contradicted,
            "unmentioned", t.unmentioned,
            "verified_facts", checked,
        "composite", ngx_dr_tensor_num(composite / w, 1),
        "insights", insights,
        "recommendations", advice);
}


/* the stored grounding of the run; without facts, no figure */

static void
ngx_dr_tensor_grounding(json_t *g, ngx_dr_tensor_t *t)
{
    json_t  *score, *strength;

    score = json_object_get(g, "score");
    strength = json_object_get(g, "strength");

    t->facts = json_integer_value(json_object_get(g, "facts"));
    t->supported = json_integer_value(json_object_get(g, "supported"));
    t->contradicted = json_integer_value(json_object_get(g, "contradicted"));
    t->unmentioned = json_integer_value(json_object_get(g, "unmentioned"));

    t->grounding = json_is_number(score) ? json_number_value(score) : NAN;
    t->strength = (t->facts > 0 && json_is_number(strength))
                  ? json_number_value(strength) : NAN;
}


/* the insights whose thresholds hold, and what they recommend */

static json_t *
ngx_dr_tensor_advice(ngx_dr_tensor_t *t, json_t **advice)
{
    ngx_uint_t             i;
    json_t                *insights;
    ngx_dr_tensor_rule_t  *rule;
    ngx_uint_t             holds[NGX_DR_TENSOR_RULES];

    holds[NGX_DR_TENSOR_MEMORY_STRONG] = t->memory >= 80;
    holds[NGX_DR_TENSOR_MEMORY_WEAK] = t->memory < 40;
    holds[NGX_DR_TENSOR_MEMORY_UNSTABLE] = t->retention < 70;
    holds[NGX_DR_TENSOR_SENTIMENT_POSITIVE] = t->sentiment >= 60;
    holds[NGX_DR_TENSOR_SENTIMENT_NEGATIVE] = t->sentiment <= 40;
    holds[NGX_DR_TENSOR_TONE_DIVIDED] = t->confidence < 60;
    holds[NGX_DR_TENSOR_FACTS_CONTRADICTED] = t->contradicted > 0;
    holds[NGX_DR_TENSOR_WELL_GROUNDED] = t->grounding >= 90
                                         && t->strength >= 50;
    holds[NGX_DR_TENSOR_FACTS_UNSTATED] = t->facts > 0 && t->strength < 30;
    holds[NGX_DR_TENSOR_NO_FACTS] = t->facts == 0;

    /* a NAN compares false: a figure that is not there selects nothing */

    insights = json_array();
    *advice = json_array();

    for (i = 0; i < NGX_DR_TENSOR_RULES; i++) {
        rule = &ngx_dr_tensor_rules[i];

        if (!holds[i]) {
            continue;
        }

        json_array_append_new(insights,
                              json_pack("{s:s, s:s}", "code", rule->code,
                                        "text", rule->text));

        if (rule->advice) {
            json_array_append_new(*advice,
                                  json_pack("{s:s, s:s, s:s}",
                                            "code", rule->advice,
                                            "text", rule->advice_text,
                                            "because", rule->code));
        }
    }

    if (json_array_size(*advice) == 0) {
        json_array_append_new(*advice,
            json_pack("{s:s, s:s, s:n}", "code", "maintain",
                      "text", "Keep the brand's public information "
                      "current; no figure needs attention.",
                      "because"));
    }

    return insights;
}


/* x rounded to places decimals, or null when there is no figure */

static json_t *
ngx_dr_tensor_num(double x, int places)
{
    double  f;

    if (isnan(x)) {
        return json_null();
    }

    f = places == 1 ? 10 : 1000;

    return json_real(round(x * f) / f);
}


static double
ngx_dr_tensor_double(PGresult *res, int col)
{
    if (PQgetisnull(res, 0, col)) {
        return NAN;
    }

    return strtod(PQgetvalue(res, 0, col), NULL);
}

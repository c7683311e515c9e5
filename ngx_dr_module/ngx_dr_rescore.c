
/*
 * Domain Runner: the scores of stored runs.
 *
 * The scores of a (run, domain) are written once its last job has ended:
 * the runner asks for the check after the commit of a job's end, and the
 * first worker looks every minute for a (run, domain) left unscored (its
 * last job's worker died after the commit).  POST /admin/rescore writes
 * them again from the stored answers, every domain's runs in their order,
 * so that a change of a formula reaches history.  Every node is told of
 * new scores, to drop its cached answers.  The formulas are those of
 * ngx_dr_score.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_rescore.h"
#include "ngx_dr_periodic.h"
#include "ngx_dr_score.h"
#include "ngx_dr_ground.h"


/* how often the first worker looks for a (run, domain) left unscored */
#define NGX_DR_RESCORE_SEARCH     60000

/* a check the database could not answer is asked again, so many times */
#define NGX_DR_RESCORE_TRIES      5

/* the longest a node's cached answers outlive new scores, before NOTIFY */
#define NGX_DR_RESCORE_NOTIFY     100

/* domains rescored at once: each is a chain of its runs, in order */
#define NGX_DR_RESCORE_LANES      4

/* the rows of ngx_dr_rescore_check_sql, in this order, and their columns */
#define NGX_DR_RESCORE_HEAD       0     /* domain, jobs expected */
#define NGX_DR_RESCORE_CURRENT    1     /* model, prompt, status, answer */
#define NGX_DR_RESCORE_PREVIOUS   2     /* the same, of the run before */
#define NGX_DR_RESCORE_HISTORY    3     /* a memory score before */
#define NGX_DR_RESCORE_FACT       4     /* key, value, aliases */

#define NGX_DR_RESCORE_KIND       0
#define NGX_DR_RESCORE_NAME       2     /* the domain, or the model */
#define NGX_DR_RESCORE_PROMPT     3
#define NGX_DR_RESCORE_NUMBER     4     /* jobs expected, or HTTP status */
#define NGX_DR_RESCORE_TEXT       5     /* the answer, or memory score */

#define NGX_DR_RESCORE_PARAMS     19    /* of ngx_dr_rescore_store_sql */


typedef struct {
    u_char                    run[NGX_INT64_LEN + 1];
    u_char                    domain[NGX_INT64_LEN + 1];
} ngx_dr_rescore_pair_t;


/* a check the runner asked for, under way in this worker */
typedef struct {
    ngx_queue_t               queue;
    ngx_dr_rescore_pair_t     pair;
    ngx_log_t                *log;
    ngx_event_t               retry;
    ngx_uint_t                tries;
    unsigned                  again:1;
} ngx_dr_rescore_pending_t;


/* one check, and whom it reports to */
typedef struct {
    ngx_dr_rescore_pair_t     pair;
    ngx_dr_rescore_done_pt    handler;
    void                     *data;
    ngx_dr_rescore_pending_t *pending;
    unsigned                  grounding:1;  /* write the grounding only */
} ngx_dr_rescore_check_t;


typedef struct ngx_dr_rescore_task_s  ngx_dr_rescore_task_t;

typedef struct {
    ngx_dr_rescore_task_t    *task;
    ngx_uint_t                at;           /* the pair being scored */
} ngx_dr_rescore_lane_t;

/* a POST /admin/rescore */
struct ngx_dr_rescore_task_s {
    ngx_pool_t               *pool;
    ngx_http_request_t       *request;      /* NULL once the client left */
    ngx_pool_cleanup_t       *cleanup;
    ngx_dr_rescore_pair_t    *pairs;
    ngx_uint_t                n;
    ngx_uint_t                next;         /* first pair not begun */
    ngx_uint_t                busy;         /* lanes at work */
    ngx_uint_t                domains;
    ngx_uint_t                scored;
    ngx_uint_t                unfinished;
    ngx_uint_t                unscorable;
    ngx_uint_t                failed;
    ngx_msec_t                start;
    ngx_dr_rescore_lane_t     lane[NGX_DR_RESCORE_LANES];
    unsigned                  grounding:1;  /* facts changed */
};


static void ngx_dr_rescore_searched(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_rescore_send(ngx_dr_rescore_pair_t *pair,
    ngx_log_t *log, ngx_dr_rescore_done_pt handler, void *data,
    ngx_dr_rescore_pending_t *pending, ngx_uint_t grounding);
static void ngx_dr_rescore_read(ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_rescore_input(ngx_dr_pg_query_t *q,
    ngx_dr_score_input_t *in, ngx_array_t *facts);
static ngx_int_t ngx_dr_rescore_store(ngx_dr_rescore_check_t *sc,
    ngx_dr_score_input_t *in, ngx_dr_score_result_t *res, char *grounding,
    ngx_log_t *log);
static char *ngx_dr_rescore_details(ngx_dr_score_result_t *res);
static ngx_int_t ngx_dr_rescore_fact(ngx_dr_pg_query_t *q, int row,
    ngx_array_t *facts);
static ngx_int_t ngx_dr_rescore_grounding(ngx_pool_t *pool,
    ngx_dr_score_input_t *in, ngx_array_t *facts, char **out);
static json_t *ngx_dr_rescore_ground_score(size_t supported,
    size_t contradicted);
static ngx_int_t ngx_dr_rescore_task(ngx_http_request_t *r,
    const char *domains, ngx_uint_t grounding);
static u_char *ngx_dr_rescore_alerts(u_char *p, ngx_uint_t alerts);
static void ngx_dr_rescore_stored(ngx_dr_pg_query_t *q);
static void ngx_dr_rescore_checked(ngx_dr_rescore_check_t *sc,
    ngx_int_t rc);
static void ngx_dr_rescore_retry(ngx_event_t *ev);
static void ngx_dr_rescore_tell(void);
static ngx_int_t ngx_dr_rescore_notify_start(ngx_dr_periodic_t *job,
    ngx_pool_t *pool);
static void ngx_dr_rescore_notified(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static void ngx_dr_rescore_listed(ngx_dr_pg_query_t *q);
static void ngx_dr_rescore_next(ngx_dr_rescore_lane_t *lane,
    ngx_uint_t first);
static void ngx_dr_rescore_scored(void *data, ngx_int_t rc);
static void ngx_dr_rescore_finish(ngx_dr_rescore_task_t *task,
    ngx_dr_pg_query_t *q);
static void ngx_dr_rescore_cleanup(void *data);


static ngx_queue_t        ngx_dr_rescore_pending;
static ngx_dr_periodic_t  ngx_dr_rescore_search;
static ngx_dr_periodic_t  ngx_dr_rescore_notify;

/* score rows this worker wrote, and how many of them NOTIFY has told */
static ngx_uint_t         ngx_dr_rescore_written;
static ngx_uint_t         ngx_dr_rescore_told;


/*
 * The end of a run and the scores of a (run, domain), when its last job
 * has ended.  The check runs after the statement that ended the job
 * committed, so of two last jobs ending at once the later always sees the
 * other's end; both may score, and the row is written again with the same
 * figures.
 */

static const char  ngx_dr_rescore_check_sql[] =
    "WITH fin AS ("
    " UPDATE runs SET status = 'done', finished_at = now(),"
    "  (input_tokens, output_tokens, cost) = (SELECT"
    "  coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
    "  coalesce(sum(cost), 0) FROM responses WHERE run_id = $1)"
    " WHERE id = $1 AND status <> 'done' AND (SELECT domain_id FROM jobs"
    "  WHERE run_id = $1 AND status IN ('queued', 'leased', 'failed')"
    NGX_DR_JOBS_OPEN_LAST ") IS NULL),"
    " ok AS ("
    " SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = $1"
    "  AND domain_id = $2 AND status IN ('queued', 'leased', 'failed'))"
    "  AS done),"
    /* a jolt run follows the jolt runs, any other run the others */
    " fam AS ("
    " SELECT s.run_id, s.memory_score FROM domain_scores s"
    " JOIN runs pr ON pr.id = s.run_id"
    " WHERE s.domain_id = $2 AND s.run_id < $1 AND (pr.kind = 'jolt')"
    "  = coalesce((SELECT kind = 'jolt' FROM runs WHERE id = $1), false)),"
    " prev AS ("
    " SELECT run_id FROM fam ORDER BY run_id DESC LIMIT 1),"
    " hist AS ("
    " SELECT run_id, memory_score FROM fam ORDER BY run_id DESC LIMIT 8) "
    "SELECT 0 AS w, 0::bigint AS o, d.domain AS a, NULL AS b,"
    " (SELECT count(*) FROM jobs WHERE run_id = $1 AND domain_id = $2)::int"
    "  AS s, NULL AS t"
    " FROM domains d, ok WHERE d.id = $2 AND ok.done "
    "UNION ALL "
    "SELECT CASE WHEN r.run_id = $1 THEN 1 ELSE 2 END, r.id,"
    " m.provider || '/' || m.model, p.name, r.http_status, r.answer"
    " FROM responses r JOIN models m ON m.id = r.model_id"
    " JOIN prompts p ON p.id = r.prompt_id, ok"
    " WHERE ok.done AND r.domain_id = $2"
    "  AND (r.run_id = $1 OR r.run_id = (SELECT run_id FROM prev)) "
    "UNION ALL "
    "SELECT 3, -h.run_id, NULL, NULL, NULL, h.memory_score::text"
    " FROM hist h, ok WHERE ok.done "
    "UNION ALL "
    "SELECT 4, f.id, f.key, f.value, NULL,"
    " array_to_string(f.aliases, E'\\n')"
    " FROM domain_facts f, ok WHERE ok.done AND f.domain_id = $2 "
    "ORDER BY 1, 2";

/*
 * The nodes are told of new scores by ngx_dr_rescore_tell(), once for
 * all the rows written in a tenth of a second, not by the table's trigger
 * once per row (sql/009_coalesced_score_notify.sql).
 */
#define NGX_DR_RESCORE_INSERT                                                \
    "WITH n AS (SELECT set_config('dr.notify_scores', 'off', true)) "        \
    "INSERT INTO domain_scores (domain_id, run_id, memory_score,"            \
    " ai_consensus, cohesion, drift_score, trend, volatility, score,"        \
    " models_positive, models_neutral, models_negative, models_tracking,"    \
    " response_count, reputation_risk, risk_level, alerts, details,"         \
    " grounding) "                                                           \
    "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"    \
    " $15, $16, $17::text[], $18::jsonb, $19::jsonb FROM n "

static const char  ngx_dr_rescore_store_sql[] =
    NGX_DR_RESCORE_INSERT
    "ON CONFLICT (domain_id, run_id) DO UPDATE SET"
    " memory_score = EXCLUDED.memory_score,"
    " ai_consensus = EXCLUDED.ai_consensus, cohesion = EXCLUDED.cohesion,"
    " drift_score = EXCLUDED.drift_score, trend = EXCLUDED.trend,"
    " volatility = EXCLUDED.volatility, score = EXCLUDED.score,"
    " models_positive = EXCLUDED.models_positive,"
    " models_neutral = EXCLUDED.models_neutral,"
    " models_negative = EXCLUDED.models_negative,"
    " models_tracking = EXCLUDED.models_tracking,"
    " response_count = EXCLUDED.response_count,"
    " reputation_risk = EXCLUDED.reputation_risk,"
    " risk_level = EXCLUDED.risk_level, alerts = EXCLUDED.alerts,"
    " details = EXCLUDED.details, grounding = EXCLUDED.grounding,"
    " computed_at = now()";

/*
 * After a change of facts only the grounding of a scored run is written:
 * the rest is as it was, and so is the time it was scored, which the
 * history of the domain is ordered and dated by.
 */
static const char  ngx_dr_rescore_ground_sql[] =
    NGX_DR_RESCORE_INSERT
    "ON CONFLICT (domain_id, run_id) DO UPDATE SET"
    " grounding = EXCLUDED.grounding";


/*
 * The (run, domain) whose jobs all ended a minute ago or more, in the last
 * day, without scores: their last job's worker died between its commit
 * and the check, the check failed five times, or the job was made dead
 * when its lease had expired too often.  They are checked as the runner
 * would.
 */
static const char  ngx_dr_rescore_search_sql[] =
    "SELECT j.run_id, j.domain_id FROM jobs j"
    " WHERE j.updated_at > now() - interval '1 day'"
    " GROUP BY 1, 2"
    " HAVING bool_and(j.status IN ('done', 'dead'))"
    "  AND max(j.updated_at) < now() - interval '1 minute'"
    "  AND NOT EXISTS (SELECT 1 FROM domain_scores s"
    "   WHERE s.run_id = j.run_id AND s.domain_id = j.domain_id)"
    " LIMIT 1000";


ngx_int_t
ngx_dr_scores_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_periodic_t   *job;
    ngx_dr_main_conf_t  *dmcf;

    ngx_queue_init(&ngx_dr_rescore_pending);

    /*
     * Any worker may write scores (POST /admin/rescore), and tells of
     * them, also while it exits.
     */

    job = &ngx_dr_rescore_notify;
    job->name = "the notification of new scores";
    job->sql = "SELECT pg_notify('dr_scores', 'INSERT')";
    job->start = ngx_dr_rescore_notify_start;
    job->done = ngx_dr_rescore_notified;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || !dmcf->runner || ngx_worker != 0) {
        return NGX_OK;
    }

    job = &ngx_dr_rescore_search;
    job->name = "the search for unscored runs";
    job->sql = ngx_dr_rescore_search_sql;
    job->interval = NGX_DR_RESCORE_SEARCH;
    job->done = ngx_dr_rescore_searched;

    ngx_dr_periodic_start(job, cycle->log,
                          NGX_DR_RESCORE_SEARCH / 2 + ngx_random() % 1000);

    return NGX_OK;
}


static void
ngx_dr_rescore_searched(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    int  i, n;

    n = (q->rc == NGX_DR_PG_OK) ? PQntuples(q->res) : 0;

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                      "%d (run, domain) whose jobs ended have no scores: "
                      "checking them", n);
    }

    for (i = 0; i < n; i++) {
        (void) ngx_dr_rescore_check((u_char *) PQgetvalue(q->res, i, 0),
                                    (u_char *) PQgetvalue(q->res, i, 1),
                                    ngx_cycle->log, NULL, NULL);
    }
}


ngx_int_t
ngx_dr_rescore_check(u_char *run, u_char *domain, ngx_log_t *log,
    ngx_dr_rescore_done_pt handler, void *data)
{
    ngx_queue_t               *q;
    ngx_dr_rescore_pair_t      pair;
    ngx_dr_rescore_pending_t  *pd;

    (void) ngx_cpystrn(pair.run, run, sizeof(pair.run));
    (void) ngx_cpystrn(pair.domain, domain, sizeof(pair.domain));

    if (handler) {
        return ngx_dr_rescore_send(&pair, log, handler, data, NULL, 0);
    }

    /*
     * The last jobs of a domain often end together, and each asks: while
     * a check of the same (run, domain) is under way here, the others
     * wait for it and one more is made after it, which sees them all.
     */

    for (q = ngx_queue_head(&ngx_dr_rescore_pending);
         q != ngx_queue_sentinel(&ngx_dr_rescore_pending);
         q = ngx_queue_next(q))
    {
        pd = ngx_queue_data(q, ngx_dr_rescore_pending_t, queue);

        if (ngx_strcmp(pd->pair.run, pair.run) == 0
            && ngx_strcmp(pd->pair.domain, pair.domain) == 0)
        {
            pd->again = 1;
            return NGX_OK;
        }
    }

    pd = ngx_alloc(sizeof(ngx_dr_rescore_pending_t), log);
    if (pd == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(pd, sizeof(ngx_dr_rescore_pending_t));
    pd->pair = pair;
    pd->log = log;

    ngx_queue_insert_tail(&ngx_dr_rescore_pending, &pd->queue);

    if (ngx_dr_rescore_send(&pd->pair, log, NULL, NULL, pd, 0) != NGX_OK) {
        ngx_queue_remove(&pd->queue);
        ngx_free(pd);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_dr_rescore_send(ngx_dr_rescore_pair_t *pair, ngx_log_t *log,
    ngx_dr_rescore_done_pt handler, void *data,
    ngx_dr_rescore_pending_t *pending, ngx_uint_t grounding)
{
    ngx_pool_t              *pool;
    const char              *params[2];
    ngx_dr_rescore_check_t  *sc;

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    sc = ngx_palloc(pool, sizeof(ngx_dr_rescore_check_t));
    if (sc == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    sc->pair = *pair;
    sc->handler = handler;
    sc->data = data;
    sc->pending = pending;
    sc->grounding = grounding ? 1 : 0;

    params[0] = (const char *) sc->pair.run;
    params[1] = (const char *) sc->pair.domain;

    if (ngx_dr_pg_query(pool, log, NGX_DR_PG_PREPARE, 0,
                        ngx_dr_rescore_check_sql, 2, params,
                        ngx_dr_rescore_read, sc)
        == NULL)
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_dr_rescore_read(ngx_dr_pg_query_t *q)
{
    char                    *grounding;
    ngx_int_t                rc;
    ngx_array_t              facts;
    ngx_dr_score_input_t     in;
    ngx_dr_score_result_t    res;
    ngx_dr_rescore_check_t  *sc;

    sc = q->data;
    rc = NGX_ERROR;

    ngx_memzero(&res, sizeof(ngx_dr_score_result_t));

    if (q->rc != NGX_DR_PG_OK) {
        goto done;
    }

    if (PQntuples(q->res) == 0
        || atoi(PQgetvalue(q->res, 0, NGX_DR_RESCORE_KIND))
           != NGX_DR_RESCORE_HEAD)
    {
        /* the (run, domain) has jobs left */
        rc = NGX_DECLINED;
        goto done;
    }

    if (ngx_array_init(&facts, q->pool, 8, sizeof(ngx_dr_ground_fact_t))
        != NGX_OK
        || ngx_dr_rescore_input(q, &in, &facts) != NGX_OK)
    {
        goto done;
    }

    if (ngx_dr_score_domain(&in, &res) != NGX_DR_SCORE_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "the answers of run %s for \"%s\" could not be "
                      "scored", sc->pair.run, in.domain);
        rc = NGX_ABORT;
        goto done;
    }

    if (ngx_dr_rescore_grounding(q->pool, &in, &facts, &grounding)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "the answers of run %s for \"%s\" could not be "
                      "grounded", sc->pair.run, in.domain);
        rc = NGX_ABORT;
        goto done;
    }

    rc = ngx_dr_rescore_store(sc, &in, &res, grounding, q->log);
    free(grounding);

    if (rc == NGX_OK) {
        /* the store reports */
        rc = NGX_AGAIN;

    } else {
        rc = NGX_ERROR;
    }

done:

    if (rc != NGX_AGAIN) {
        ngx_dr_rescore_checked(sc, rc);
    }

    ngx_dr_score_result_free(&res);
    ngx_destroy_pool(q->pool);
}


/* the scorer's input: the rows, which live as long as q */

static ngx_int_t
ngx_dr_rescore_input(ngx_dr_pg_query_t *q, ngx_dr_score_input_t *in,
    ngx_array_t *facts)
{
    int                     i, n, kind;
    double                 *history;
    PGresult               *res;
    ngx_dr_score_answer_t  *cur, *prev, *sa;

    res = q->res;
    n = PQntuples(res);

    cur = ngx_pcalloc(q->pool, n * sizeof(ngx_dr_score_answer_t));
    prev = ngx_pcalloc(q->pool, n * sizeof(ngx_dr_score_answer_t));
    history = ngx_pcalloc(q->pool, n * sizeof(double));

    if (cur == NULL || prev == NULL || history == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(in, sizeof(ngx_dr_score_input_t));
    in->domain = PQgetvalue(res, 0, NGX_DR_RESCORE_NAME);
    in->expected = atoi(PQgetvalue(res, 0, NGX_DR_RESCORE_NUMBER));
    in->answers = cur;
    in->previous = prev;
    in->history = history;

    for (i = 1; i < n; i++) {
        kind = atoi(PQgetvalue(res, i, NGX_DR_RESCORE_KIND));

        if (kind == NGX_DR_RESCORE_HISTORY) {
            history[in->n_history++] =
                strtod(PQgetvalue(res, i, NGX_DR_RESCORE_TEXT), NULL);
            continue;
        }

        if (kind == NGX_DR_RESCORE_FACT) {
            if (ngx_dr_rescore_fact(q, i, facts) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        sa = (kind == NGX_DR_RESCORE_CURRENT) ? &cur[in->n_answers++]
                                              : &prev[in->n_previous++];
        sa->model = PQgetvalue(res, i, NGX_DR_RESCORE_NAME);
        sa->prompt = PQgetvalue(res, i, NGX_DR_RESCORE_PROMPT);
        sa->http_status = atoi(PQgetvalue(res, i, NGX_DR_RESCORE_NUMBER));
        sa->text = PQgetvalue(res, i, NGX_DR_RESCORE_TEXT);
        sa->text_len = PQgetlength(res, i, NGX_DR_RESCORE_TEXT);
    }

    return NGX_OK;
}


/* a fact of the domain: its key, value and aliases (one a line) */

static ngx_int_t
ngx_dr_rescore_fact(ngx_dr_pg_query_t *q, int row, ngx_array_t *facts)
{
    char                  *a, *p, *nl;
    size_t                 len;
    const char           **aliases;
    ngx_uint_t             n;
    ngx_dr_ground_fact_t  *f;

    len = PQgetlength(q->res, row, NGX_DR_RESCORE_TEXT);

    f = ngx_array_push(facts);
    a = ngx_pnalloc(q->pool, len + 1);

    if (f == NULL || a == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(a, PQgetvalue(q->res, row, NGX_DR_RESCORE_TEXT), len) = '\0';

    f->key = ngx_dr_ground_key(PQgetvalue(q->res, row, NGX_DR_RESCORE_NAME),
                               PQgetlength(q->res, row,
                                           NGX_DR_RESCORE_NAME));
    f->value = PQgetvalue(q->res, row, NGX_DR_RESCORE_PROMPT);
    f->n_aliases = 0;

    n = (*a != '\0');
    for (p = a; *p; p++) {
        n += (*p == '\n');
    }

    aliases = ngx_palloc(q->pool, (n + 1) * sizeof(char *));
    if (aliases == NULL) {
        return NGX_ERROR;
    }

    for (p = a; n && p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
        }

        aliases[f->n_aliases++] = p;
    }

    f->aliases = aliases;

    return NGX_OK;
}


/*
 * The grounding of the run's answers against the domain's facts, as the
 * JSON of domain_scores.grounding, malloc()ed; NULL without facts.
 */

static ngx_int_t
ngx_dr_rescore_grounding(ngx_pool_t *pool, ngx_dr_score_input_t *in,
    ngx_array_t *facts, char **out)
{
    size_t                   k;
    json_t                  *root, *models, *checked;
    ngx_dr_ground_fact_t    *f;
    ngx_dr_ground_count_t   *c;
    ngx_dr_ground_answer_t  *ga;
    ngx_dr_ground_result_t   g;
    ngx_dr_score_verdict_t   v;

    *out = NULL;

    if (facts->nelts == 0) {
        return NGX_OK;
    }

    f = facts->elts;

    /* the answers the scorer holds valid are those grounded */

    ga = ngx_palloc(pool, (in->n_answers + 1)
                          * sizeof(ngx_dr_ground_answer_t));
    if (ga == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < in->n_answers; k++) {
        if (ngx_dr_score_answer(in->domain, in->answers[k].http_status,
                                in->answers[k].text,
                                in->answers[k].text_len, &v)
            != NGX_DR_SCORE_OK)
        {
            return NGX_ERROR;
        }

        ga[k].model = in->answers[k].model;
        ga[k].text = in->answers[k].text;
        ga[k].text_len = in->answers[k].text_len;
        ga[k].valid = v.valid;
    }

    if (ngx_dr_ground_domain(f, facts->nelts, ga, in->n_answers, &g)
        != NGX_DR_GROUND_OK)
    {
        return NGX_ERROR;
    }

    models = json_object();
    checked = json_array();
    root = json_pack("{s:i, s:i, s:i, s:i, s:i, s:o, s:f, s:o, s:o}",
                     "facts", (int) facts->nelts,
                     "models", (int) g.n_models,
                     "supported", (int) g.supported,
                     "contradicted", (int) g.contradicted,
                     "unmentioned", (int) g.unmentioned,
                     "score", g.has_score ? json_real(g.score) : json_null(),
                     "strength", g.strength,
                     "by_model", models,
                     "checked", checked);

    for (k = 0; root && models && k < g.n_models; k++) {
        json_object_set_new(models, g.models[k].model,
            json_pack("{s:i, s:i, s:i, s:o}",
                      "supported", (int) g.models[k].supported,
                      "contradicted", (int) g.models[k].contradicted,
                      "unmentioned", (int) g.models[k].unmentioned,
                      "score",
                      ngx_dr_rescore_ground_score(g.models[k].supported,
                                                  g.models[k].contradicted)));
    }

    for (k = 0; root && checked && k < facts->nelts; k++) {
        c = &g.facts[k];
        json_array_append_new(checked,
            json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}",
                      "key", ngx_dr_ground_key_name(f[k].key),
                      "value", f[k].value,
                      "supported", (int) c->supported,
                      "contradicted", (int) c->contradicted,
                      "unmentioned", (int) c->unmentioned,
                      "status", ngx_dr_ground_fact_status(c)));
    }

    ngx_dr_ground_result_free(&g);

    *out = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);

    return *out ? NGX_OK : NGX_ERROR;
}


/* a model's grounding score, as the domain's: null when it stated none */

static json_t *
ngx_dr_rescore_ground_score(size_t supported, size_t contradicted)
{
    if (supported + contradicted == 0) {
        return json_null();
    }

    return json_real(100.0 * supported / (supported + contradicted));
}


/*
 * The row of the scores, sent in a pool of its own: the check's goes
 * when this returns.  NGX_OK: ngx_dr_rescore_stored() reports.
 */

static ngx_int_t
ngx_dr_rescore_store(ngx_dr_rescore_check_t *sc, ngx_dr_score_input_t *in,
    ngx_dr_score_result_t *res, char *grounding, ngx_log_t *log)
{
    int                      n;
    char                    *details;
    u_char                  *v;
    size_t                   len;
    ngx_pool_t              *pool;
    const char             **params;
    ngx_dr_rescore_check_t  *stored;

    details = ngx_dr_rescore_details(res);
    if (details == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(details) + 1 + (grounding ? ngx_strlen(grounding) : 0)
          + 1;

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        free(details);
        return NGX_ERROR;
    }

    /* the details, the alerts, and the numbers */

    v = ngx_pnalloc(pool, len + 64 + 16 * (NGX_INT64_LEN + 32));
    params = ngx_palloc(pool, NGX_DR_RESCORE_PARAMS * sizeof(const char *));
    stored = ngx_palloc(pool, sizeof(ngx_dr_rescore_check_t));

    if (v == NULL || params == NULL || stored == NULL) {
        free(details);
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    *stored = *sc;
    n = 0;

    /* in the order of the statement's columns */

#define ngx_dr_rescore_param(fmt, x)                                          \
    params[n++] = (char *) v;                                                 \
    v = ngx_sprintf(v, fmt "%Z", x)

    params[n++] = (const char *) stored->pair.domain;
    params[n++] = (const char *) stored->pair.run;
    ngx_dr_rescore_param("%.6f", res->memory_score);
    ngx_dr_rescore_param("%.6f", res->ai_consensus);
    ngx_dr_rescore_param("%.6f", res->cohesion);
    ngx_dr_rescore_param("%.6f", res->drift_score);
    ngx_dr_rescore_param("%.6f", res->has_trend ? res->trend : 0.0);
    ngx_dr_rescore_param("%.6f", res->volatility);
    ngx_dr_rescore_param("%.6f", res->score);
    ngx_dr_rescore_param("%uz", res->models_positive);
    ngx_dr_rescore_param("%uz", res->models_neutral);
    ngx_dr_rescore_param("%uz", res->models_negative);
    ngx_dr_rescore_param("%uz", res->n_models);
    ngx_dr_rescore_param("%uz", in->n_answers);
    ngx_dr_rescore_param("%ui", (ngx_uint_t) res->risk);

#undef ngx_dr_rescore_param

    params[n++] = ngx_dr_score_risk_name(res->risk_level);
    params[n++] = (char *) v;
    v = ngx_dr_rescore_alerts(v, res->alerts);
    params[n++] = (char *) v;
    v = ngx_cpymem(v, details, ngx_strlen(details) + 1);
    params[n++] = grounding ? (char *) v : NULL;

    if (grounding) {
        (void) ngx_cpymem(v, grounding, ngx_strlen(grounding) + 1);
    }

    free(details);

    if (ngx_dr_pg_query(pool, log, NGX_DR_PG_PREPARE, 0,
                        sc->grounding ? ngx_dr_rescore_ground_sql
                                      : ngx_dr_rescore_store_sql,
                        n, params, ngx_dr_rescore_stored, stored)
        == NULL)
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* what each model answered, and the drift of each answer; malloc()ed */

static char *
ngx_dr_rescore_details(ngx_dr_score_result_t *res)
{
    char    *details;
    size_t   k;
    json_t  *models, *m, *drift, *root;

    models = json_object();
    drift = json_array();
    root = json_pack("{s:o, s:o}", "models", models, "drift", drift);

    for (k = 0; models && k < res->n_models; k++) {
        m = json_pack("{s:b, s:f, s:f, s:s, s:i, s:i}",
                      "recognized", res->models[k].recognized > 0,
                      "agreement", 100 * res->models[k].agreement,
                      "sentiment", res->models[k].sentiment,
                      "sentiment_class",
                      ngx_dr_score_class_name(res->models[k].sentiment_class),
                      "answers", (int) res->models[k].answers,
                      "valid", (int) res->models[k].valid);
        json_object_set_new(models, res->models[k].model, m);
    }

    for (k = 0; drift && k < res->n_drift; k++) {
        json_array_append_new(drift,
            json_pack("{s:s, s:s, s:f, s:s}",
                      "model", res->drift[k].model,
                      "prompt", res->drift[k].prompt,
                      "drift", res->drift[k].drift,
                      "status",
                      ngx_dr_score_drift_name(res->drift[k].status)));
    }

    details = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);

    return details;
}


/* the alerts as a PostgreSQL text[] literal, NUL ended */

static u_char *
ngx_dr_rescore_alerts(u_char *p, ngx_uint_t alerts)
{
    u_char      *start;
    ngx_uint_t   flag;
    const char  *name;

    start = p;
    *p++ = '{';

    for (flag = 1; flag <= NGX_DR_SCORE_ALERT_LOW_RECOGNITION; flag <<= 1) {
        if (alerts & flag) {
            name = ngx_dr_score_alert_name(flag);

            if (p != start + 1) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, name, ngx_strlen(name));
        }
    }

    *p++ = '}';
    *p++ = '\0';

    return p;
}


static void
ngx_dr_rescore_stored(ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "the scores of a domain could not be stored");

    } else {
        ngx_dr_rescore_tell();
    }

    ngx_dr_rescore_checked(q->data, q->rc == NGX_DR_PG_OK ? NGX_OK
                                                          : NGX_ERROR);
    ngx_destroy_pool(q->pool);
}


/* the check's outcome, to whom asked for it */

static void
ngx_dr_rescore_checked(ngx_dr_rescore_check_t *sc, ngx_int_t rc)
{
    ngx_dr_rescore_pending_t  *pd;

    if (sc->handler) {
        sc->handler(sc->data, rc);
    }

    pd = sc->pending;

    if (pd == NULL) {
        return;
    }

    if (rc == NGX_ERROR && pd->tries < NGX_DR_RESCORE_TRIES) {
        /* the database could not answer: once more in a second */
        pd->tries++;
        pd->again = 0;
        pd->retry.handler = ngx_dr_rescore_retry;
        pd->retry.data = pd;
        pd->retry.log = pd->log;
        ngx_add_timer(&pd->retry, 1000);
        return;
    }

    if (pd->again) {
        pd->again = 0;

        if (ngx_dr_rescore_send(&pd->pair, pd->log, NULL, NULL, pd, 0)
            == NGX_OK)
        {
            return;
        }
    }

    ngx_queue_remove(&pd->queue);
    ngx_free(pd);
}


static void
ngx_dr_rescore_retry(ngx_event_t *ev)
{
    ngx_dr_rescore_pending_t  *pd;

    pd = ev->data;

    if (ngx_dr_rescore_send(&pd->pair, pd->log, NULL, NULL, pd, 0)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, pd->log, 0,
                      "run %s: the scores of domain %s are left to "
                      "POST /admin/rescore", pd->pair.run, pd->pair.domain);
        ngx_queue_remove(&pd->queue);
        ngx_free(pd);
    }
}


/*
 * Every node drops its cached answers: one notification for the rows this
 * worker wrote since the last, sent also by an exiting worker.  Rows
 * written while one is under way are told by one more.
 */

static void
ngx_dr_rescore_tell(void)
{
    ngx_dr_rescore_written++;

    ngx_dr_periodic_kick(&ngx_dr_rescore_notify, ngx_cycle->log,
                         NGX_DR_RESCORE_NOTIFY);
}


static ngx_int_t
ngx_dr_rescore_notify_start(ngx_dr_periodic_t *job, ngx_pool_t *pool)
{
    ngx_dr_rescore_told = ngx_dr_rescore_written;

    return NGX_OK;
}


static void
ngx_dr_rescore_notified(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    if (q->rc != NGX_DR_PG_OK) {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "the nodes could not be told of new scores; their "
                      "cached answers expire with their time to live");
    }

    if (ngx_dr_rescore_told != ngx_dr_rescore_written) {
        ngx_dr_periodic_kick(job, ngx_cycle->log, NGX_DR_RESCORE_NOTIFY);
    }
}


/*
 * POST /admin/rescore {domains?}: every (run, domain) that has jobs, a
 * domain's runs in the order they were made, since each run's scores
 * read the previous run's answers and the memory scores before it.
 */

static const char  ngx_dr_rescore_list_sql[] =
    "SELECT j.run_id, j.domain_id FROM jobs j"
    " WHERE $1::text[] IS NULL OR j.domain_id IN"
    "  (SELECT id FROM domains WHERE domain = ANY ($1))"
    " GROUP BY 1, 2 ORDER BY 2, 1";


ngx_int_t
ngx_dr_rescore_handler(ngx_http_request_t *r, const char *domains)
{
    if (ngx_dr_rescore_task(r, domains, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * The same work for no client: the domains' facts changed, and their
 * runs' grounding is written again from the stored answers, as POST
 * /admin/rescore would, leaving their other scores as they are.
 */

ngx_int_t
ngx_dr_rescore_domains(const char *domains)
{
    return ngx_dr_rescore_task(NULL, domains, 1);
}


static ngx_int_t
ngx_dr_rescore_task(ngx_http_request_t *r, const char *domains,
    ngx_uint_t grounding)
{
    ngx_pool_t             *pool;
    const char             *params[1];
    ngx_pool_cleanup_t     *cln;
    ngx_dr_rescore_task_t  *task;

    /* once asked, the work is done even if the client goes away */

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    task = ngx_pcalloc(pool, sizeof(ngx_dr_rescore_task_t));
    cln = r ? ngx_pool_cleanup_add(r->pool, 0) : NULL;

    if (task == NULL || (r && cln == NULL)) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    task->pool = pool;
    task->request = r;
    task->cleanup = cln;
    task->start = ngx_current_msec;
    task->grounding = grounding ? 1 : 0;

    params[0] = domains;

    if (ngx_dr_pg_query(pool, pool->log, 0, 0, ngx_dr_rescore_list_sql, 1,
                        params, ngx_dr_rescore_listed, task)
        == NULL)
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    if (cln) {
        cln->handler = ngx_dr_rescore_cleanup;
        cln->data = task;
    }

    return NGX_OK;
}


static void
ngx_dr_rescore_listed(ngx_dr_pg_query_t *q)
{
    int                     i, n;
    ngx_uint_t              k;
    ngx_dr_rescore_pair_t  *pair;
    ngx_dr_rescore_task_t  *task;

    task = q->data;
    n = (q->rc == NGX_DR_PG_OK) ? PQntuples(q->res) : 0;

    task->pairs = ngx_palloc(task->pool,
                             (n + 1) * sizeof(ngx_dr_rescore_pair_t));

    if (q->rc != NGX_DR_PG_OK || task->pairs == NULL) {
        ngx_dr_rescore_finish(task, q);
        return;
    }

    task->n = n;
    pair = task->pairs;

    for (i = 0; i < n; i++) {
        (void) ngx_cpystrn(pair[i].run, (u_char *) PQgetvalue(q->res, i, 0),
                           sizeof(pair[i].run));
        (void) ngx_cpystrn(pair[i].domain,
                           (u_char *) PQgetvalue(q->res, i, 1),
                           sizeof(pair[i].domain));

        if (i == 0 || ngx_strcmp(pair[i].domain, pair[i - 1].domain) != 0) {
            task->domains++;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, task->pool->log, 0,
                  "rescoring %ui runs of %ui domains", task->n,
                  task->domains);

    task->busy = NGX_DR_RESCORE_LANES;

    for (k = 0; k < NGX_DR_RESCORE_LANES; k++) {
        task->lane[k].task = task;
        ngx_dr_rescore_next(&task->lane[k], 1);
    }
}


/* the lane's next pair: its domain's next run, or a domain not begun */

static void
ngx_dr_rescore_next(ngx_dr_rescore_lane_t *lane, ngx_uint_t first)
{
    ngx_uint_t              at;
    ngx_dr_rescore_pair_t  *pair;
    ngx_dr_rescore_task_t  *task;

    task = lane->task;
    pair = task->pairs;

    for ( ;; ) {
        if (ngx_exiting) {
            /* what is left stays as it is: the worker is going away */
            task->next = task->n;
        }

        at = lane->at + 1;

        if (first || at >= task->n || ngx_exiting
            || ngx_strcmp(pair[at].domain, pair[lane->at].domain) != 0)
        {
            if (task->next >= task->n) {
                if (--task->busy == 0) {
                    ngx_dr_rescore_finish(task, NULL);
                }

                return;
            }

            at = task->next;

            do {
                task->next++;
            } while (task->next < task->n
                     && ngx_strcmp(pair[task->next].domain, pair[at].domain)
                        == 0);
        }

        first = 0;
        lane->at = at;

        if (ngx_dr_rescore_send(&pair[at], task->pool->log,
                                ngx_dr_rescore_scored, lane, NULL,
                                task->grounding)
            == NGX_OK)
        {
            return;
        }

        task->failed++;
    }
}


static void
ngx_dr_rescore_scored(void *data, ngx_int_t rc)
{
    ngx_dr_rescore_lane_t  *lane;

    lane = data;

    switch (rc) {

    case NGX_OK:
        lane->task->scored++;
        break;

    case NGX_DECLINED:
        lane->task->unfinished++;
        break;

    case NGX_ABORT:
        lane->task->unscorable++;
        break;

    default:
        lane->task->failed++;
    }

    ngx_dr_rescore_next(lane, 0);
}


/* the answer, if the client is still there: the counts, or why none */

static void
ngx_dr_rescore_finish(ngx_dr_rescore_task_t *task, ngx_dr_pg_query_t *q)
{
    json_t              *answer;
    ngx_int_t            rc;
    ngx_uint_t           level;
    ngx_msec_t           ms;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    ms = ngx_current_msec - task->start;
    level = task->failed ? NGX_LOG_ERR : NGX_LOG_NOTICE;

    if (q == NULL) {
        ngx_log_error(level, task->pool->log, 0,
                      "rescored %ui of %ui runs of %ui domains in %M ms, "
                      "%ui unfinished, %ui unscorable, %ui failed",
                      task->scored, task->n, task->domains, ms,
                      task->unfinished, task->unscorable, task->failed);
    }

    r = task->request;

    if (r == NULL) {
        ngx_destroy_pool(task->pool);
        return;
    }

    task->cleanup->handler = NULL;
    c = r->connection;

    if (q && q->rc != NGX_DR_PG_OK) {
        rc = ngx_dr_http_unavailable(r, q);

    } else if (q) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    } else {
        answer = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}",
                           "domains", (json_int_t) task->domains,
                           "runs", (json_int_t) task->n,
                           "scored", (json_int_t) task->scored,
                           "unfinished", (json_int_t) task->unfinished,
                           "unscorable", (json_int_t) task->unscorable,
                           "failed", (json_int_t) task->failed,
                           "not_reached", (json_int_t) (task->n
                               - task->scored - task->unfinished
                               - task->unscorable - task->failed),
                           "seconds", ms / 1000.0);

        if (answer && task->failed) {
            json_object_set_new(answer, "error",
                                json_string("database_unavailable"));
            json_object_set_new(answer, "message",
                json_string("some runs could not be rescored: the scores "
                            "already written stand; ask again"));
        }

        rc = ngx_dr_json_send(r, task->failed ? NGX_HTTP_SERVICE_UNAVAILABLE
                                              : NGX_HTTP_OK, answer);
    }

    ngx_destroy_pool(task->pool);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_dr_rescore_cleanup(void *data)
{
    ngx_dr_rescore_task_t  *task = data;

    task->request = NULL;
}


/*
 * Domain Runner: the queue's workers.
 *
 * Every worker of every node claims due jobs in batches (FOR UPDATE SKIP
 * LOCKED, under a lease, dr_runner_lease: a job whose worker died returns
 * to the queue when its lease expires), calls the provider, and ends each
 * job in one statement that stores the answer (unique per run, domain,
 * model and prompt: a job done twice stores once) and marks the job done;
 * a failed attempt is put back with exponential backoff and jitter, or
 * dead after its last attempt, with its error kept.  Each claim has a
 * token of its own, and a job's end is taken only under the token of the
 * claim that still holds it.
 *
 * The answers that come within a few milliseconds of each other end their
 * jobs together: one statement, one commit and one flush of the WAL for
 * all of them, each still under its own claim's token.  A job is counted
 * done only once that statement has committed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_runner.h"
#include "ngx_dr_job.h"
#include "ngx_dr_periodic.h"
#include "ngx_dr_rescore.h"


#define NGX_DR_RUNNER_POLL       500
#define NGX_DR_RUNNER_REAP       1000
/* a job's end is not sent later than this before its lease ends */
#define NGX_DR_RUNNER_MARGIN     1000
/*
 * the answers gathered into one statement: for this long, or this many;
 * the wait is small beside a call's, and the longer it is, the more
 * answers share each statement's and each commit's fixed cost
 */
#define NGX_DR_RUNNER_BATCH_WAIT 20
#define NGX_DR_RUNNER_BATCH_MAX  256

/* the columns of ngx_dr_runner_claim_sql */
#define NGX_DR_CLAIM_ID          0
#define NGX_DR_CLAIM_RUN_ID      1
#define NGX_DR_CLAIM_DOMAIN_ID   2
#define NGX_DR_CLAIM_MODEL_ID    3
#define NGX_DR_CLAIM_PROMPT_ID   4
#define NGX_DR_CLAIM_ATTEMPT     5
#define NGX_DR_CLAIM_MAX         6
#define NGX_DR_CLAIM_PROVIDER    7
#define NGX_DR_CLAIM_MODEL       8
#define NGX_DR_CLAIM_TEXT        9
#define NGX_DR_CLAIM_PRICE_IN    10
#define NGX_DR_CLAIM_PRICE_OUT   11
#define NGX_DR_CLAIM_TOKEN       12

/* a uuid in its text form */
#define NGX_DR_RUNNER_TOKEN_LEN  36

/* the parameters of ngx_dr_runner_done_sql and ngx_dr_runner_failed_sql */
#define NGX_DR_RUNNER_DONE_PARAMS    15
#define NGX_DR_RUNNER_FAILED_PARAMS  5
#define NGX_DR_RUNNER_DEFER_PARAMS   4


/* a job of the queue, held by this worker */
typedef struct {
    ngx_dr_job_t              job;
    u_char                    id[NGX_INT64_LEN + 1];
    u_char                    run_id[NGX_INT64_LEN + 1];
    u_char                    domain_id[NGX_INT64_LEN + 1];
    u_char                    model_id[NGX_INT64_LEN + 1];
    u_char                    prompt_id[NGX_INT64_LEN + 1];
    u_char                    trace_id[33];
    u_char                    token[NGX_DR_RUNNER_TOKEN_LEN + 1];
    ngx_uint_t                attempt;      /* of the queue */
    ngx_uint_t                max;
    ngx_int_t                 provider;     /* index, or -1 */

    /* the statement ending the job, tried again while the lease lasts */
    const char               *sql;
    const char              **params;
    int                       nparams;
    ngx_msec_t                lease_end;
    ngx_msec_t                store_delay;
    ngx_event_t               store;
    ngx_queue_t               queue;        /* in a batch of answers */
} ngx_dr_runner_job_t;


/* answers stored together */
typedef struct {
    ngx_queue_t               jobs;
    ngx_pool_t               *pool;
    ngx_log_t                *log;
    ngx_array_t               pairs;        /* that may have ended */
} ngx_dr_runner_batch_t;


/* a (run, domain) of a batch */
typedef struct {
    u_char                   *run;
    u_char                   *domain;
} ngx_dr_runner_pair_t;


/* the runner of this worker */
typedef struct {
    ngx_event_t               claim;        /* the next claim */
    ngx_dr_periodic_t         reaper;
    ngx_uint_t                busy;         /* jobs held */
    ngx_uint_t               *provider_busy;    /* of each provider */
    ngx_uint_t                asked;        /* by the claim under way */
    ngx_uint_t                turn;         /* the provider served first */
    unsigned                  claiming:1;
    ngx_queue_t               answers;      /* waiting for the next batch */
    ngx_uint_t                nanswers;
    ngx_event_t               batch;        /* its timer */
    u_char                    owner[128];   /* "host/pid" */
    u_char                    lease[NGX_INT_T_LEN + 1];
} ngx_dr_runner_t;


static void ngx_dr_runner_reaped(ngx_dr_periodic_t *job,
    ngx_dr_pg_query_t *q);
static void ngx_dr_runner_again(ngx_msec_t delay);
static void ngx_dr_runner_poll(ngx_event_t *ev);
static ngx_uint_t ngx_dr_runner_room(ngx_dr_main_conf_t *dmcf,
    ngx_uint_t *room);
static ngx_uint_t ngx_dr_runner_share(ngx_uint_t want, ngx_uint_t n,
    ngx_uint_t *room, ngx_uint_t left, ngx_uint_t *give);
static ngx_int_t ngx_dr_runner_lists(ngx_pool_t *pool,
    ngx_dr_main_conf_t *dmcf, ngx_uint_t *give, const char **names,
    const char **counts);
static void ngx_dr_runner_claimed(ngx_dr_pg_query_t *q);
static ngx_dr_runner_job_t *ngx_dr_runner_job(PGresult *res, int row);
static void ngx_dr_runner_take(ngx_dr_runner_job_t *qj, PGresult *res,
    int row);
static void ngx_dr_runner_job_done(ngx_dr_job_t *job);
static void ngx_dr_runner_answer(ngx_dr_runner_job_t *qj, u_char *p);
static void ngx_dr_runner_send_end(ngx_dr_runner_job_t *qj, const char *sql,
    int nparams);
static void ngx_dr_runner_send_failure(ngx_dr_runner_job_t *qj, char *delay,
    ngx_uint_t retryable, char *error);
static void ngx_dr_runner_batch_add(ngx_dr_runner_job_t *qj);
static void ngx_dr_runner_batch_send(ngx_event_t *ev);
static json_t *ngx_dr_runner_batch_row(ngx_dr_runner_job_t *qj);
static void ngx_dr_runner_batch_stored(ngx_dr_pg_query_t *q);
static void ngx_dr_runner_batch_undo(ngx_dr_runner_batch_t *b);
static void ngx_dr_runner_batch_pair(ngx_dr_runner_batch_t *b,
    ngx_dr_runner_job_t *qj);
static void ngx_dr_runner_batch_check(ngx_dr_runner_batch_t *b);
static void ngx_dr_runner_batch_checked(ngx_dr_pg_query_t *q);
static void ngx_dr_runner_batch_alone(ngx_dr_runner_batch_t *b);
static void ngx_dr_runner_store(ngx_event_t *ev);
static void ngx_dr_runner_stored(ngx_dr_pg_query_t *q);
static u_char *ngx_dr_runner_refused(ngx_pool_t *pool, ngx_str_t *error);
static void ngx_dr_runner_finish(ngx_dr_runner_job_t *qj);


static ngx_dr_runner_t  ngx_dr_runner;


static const char  ngx_dr_runner_claim_sql[] =
    "WITH c AS ("
    " SELECT x.id FROM unnest($4::text[], $2::int[]) AS q(provider, n)"
    /*
     * each model's first jobs in the order of its index (jobs_claim),
     * then the provider's first of those: an ordered index scan per
     * model instead of reading and sorting every waiting job; the rows
     * locked beyond the provider's share are free again at the commit
     */
    " CROSS JOIN LATERAL ("
    "  SELECT y.id FROM models m CROSS JOIN LATERAL ("
    "   SELECT j.id, j.not_before FROM jobs j WHERE j.model_id = m.id"
    "   AND j.status IN ('queued', 'failed') AND j.not_before <= now()"
    "   ORDER BY j.not_before, j.id LIMIT q.n"
    "   FOR UPDATE OF j SKIP LOCKED) y"
    "  WHERE m.provider = q.provider"
    "  ORDER BY y.not_before, y.id LIMIT q.n) x),"
    " u AS ("
    " UPDATE jobs j SET status = 'leased', lease_owner = $1,"
    "  lease_token = gen_random_uuid(),"
    "  lease_expires = now() + $3::int * interval '1 millisecond',"
    "  attempts = j.attempts + 1, updated_at = now()"
    /* by the primary key: a join would plan a scan of every job */
    " WHERE j.id = ANY (ARRAY(SELECT id FROM c))"
    " RETURNING j.*),"
    " r AS ("
    " UPDATE runs SET status = 'running', started_at = now()"
    " WHERE id IN (SELECT run_id FROM u) AND status = 'queued'),"
    /*
     * a run is ended after its last job's end commits; if the worker
     * died in between, the next claim anywhere ends it
     */
    " f AS ("
    " UPDATE runs SET status = 'done', finished_at = now(),"
    "  (input_tokens, output_tokens, cost) = (SELECT"
    "  coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
    "  coalesce(sum(cost), 0) FROM responses WHERE run_id = runs.id)"
    " WHERE status = 'running' AND (SELECT domain_id FROM jobs"
    "  WHERE run_id = runs.id AND status IN ('queued', 'leased', 'failed')"
    NGX_DR_JOBS_OPEN_LAST ") IS NULL"
    " ) "
    "SELECT u.id, u.run_id, u.domain_id, u.model_id, u.prompt_id,"
    " u.attempts, u.max_attempts, m.provider, m.model,"
    /* a jolt run's prompts name its event (sql/019_events_tiers_seo.sql) */
    " replace(replace(p.template, '{domain}', d.domain), '{event}',"
    "  coalesce((SELECT scope->>'event' FROM runs WHERE id = u.run_id),"
    "  'none known')),"
    " m.input_price_mtok, m.output_price_mtok, u.lease_token "
    "FROM u JOIN domains d ON d.id = u.domain_id"
    " JOIN models m ON m.id = u.model_id"
    " JOIN prompts p ON p.id = u.prompt_id";

/*
 * A job whose call was not sent (no spend budget had room for it) waits in
 * the queue again without spending an attempt, until its budget is raised
 * or its period rolls over.
 */
static const char  ngx_dr_runner_defer_sql[] =
    "UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0),"
    " not_before = now() + $3::int * interval '1 millisecond',"
    " last_error = $4, lease_owner = NULL, lease_expires = NULL,"
    " updated_at = now() "
    "WHERE id = $1 AND status = 'leased' AND lease_owner = $2";

/*
 * Jobs whose lease expired (their worker was killed, their node lost, or
 * their end could not be stored) go back to the queue, for any worker's
 * next claim.  Every worker asks every second; the jobs it finds locked
 * are ending at that moment.
 */
static const char  ngx_dr_runner_reap_sql[] =
    "UPDATE jobs SET lease_owner = NULL, lease_token = NULL,"
    " lease_expires = NULL, not_before = now(), updated_at = now(),"
    /* a job that outlived twice its attempts' leases kills its workers */
    " status = CASE WHEN attempts >= 2 * max_attempts THEN 'dead'"
    "  ELSE 'queued' END,"
    " last_error = CASE WHEN attempts >= 2 * max_attempts"
    "  THEN 'its lease expired ' || attempts || ' times'"
    "  ELSE last_error END "
    "WHERE id IN (SELECT id FROM jobs"
    " WHERE status = 'leased' AND lease_expires < now()"
    " FOR UPDATE SKIP LOCKED)";

/*
 * The answer is stored only by the claim that still holds the job: one
 * whose lease was lost, the job being queued or claimed again meanwhile,
 * stores nothing and ends nothing, whatever it took to come back.
 */
static const char  ngx_dr_runner_done_sql[] =
    "WITH upd AS ("
    " UPDATE jobs SET status = 'done', lease_owner = NULL,"
    "  lease_token = NULL, lease_expires = NULL, last_error = NULL,"
    "  updated_at = now()"
    " WHERE id = $1 AND status = 'leased' AND lease_token = $15::uuid"
    " RETURNING 1),"
    " ins AS ("
    " INSERT INTO responses (job_id, run_id, domain_id, model_id,"
    "  prompt_id, prompt_text, answer, finish_reason, http_status,"
    "  input_tokens, output_tokens, cost, latency_ms, simulated)"
    " SELECT $1::int8, $2::int8, $3::int8, $4::int, $5::int, $6, $7, $8,"
    "  $9::int, $10::int, $11::int, $12::numeric / 1000000, $13::int,"
    "  $14::bool FROM upd"
    " ON CONFLICT (run_id, domain_id, model_id, prompt_id) DO NOTHING"
    " RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM upd), (SELECT count(*) FROM jobs"
    " WHERE run_id = $2 AND domain_id = $3 AND id <> $1"
    "  AND status IN ('queued', 'failed'))";

/*
 * The same for a batch of answers, a JSON array of objects of the same
 * fields: one row of outcome for each, in the order of the array.
 */
static const char  ngx_dr_runner_done_batch_sql[] =
    "WITH x AS ("
    " SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (id int8,"
    "  run_id int8, domain_id int8, model_id int, prompt_id int,"
    "  prompt_text text, answer text, finish_reason text, http_status int,"
    "  input_tokens int, output_tokens int, cost numeric, latency_ms int,"
    "  simulated bool, token uuid)) WITH ORDINALITY AS x),"
    " upd AS ("
    " UPDATE jobs j SET status = 'done', lease_owner = NULL,"
    "  lease_token = NULL, lease_expires = NULL, last_error = NULL,"
    "  updated_at = now()"
    " FROM x WHERE j.id = x.id AND j.status = 'leased'"
    "  AND j.lease_token = x.token"
    " RETURNING j.id),"
    " ins AS ("
    " INSERT INTO responses (job_id, run_id, domain_id, model_id,"
    "  prompt_id, prompt_text, answer, finish_reason, http_status,"
    "  input_tokens, output_tokens, cost, latency_ms, simulated)"
    " SELECT x.id, x.run_id, x.domain_id, x.model_id, x.prompt_id,"
    "  x.prompt_text, x.answer, x.finish_reason, x.http_status,"
    "  x.input_tokens, x.output_tokens, x.cost / 1000000, x.latency_ms,"
    "  x.simulated FROM x JOIN upd ON upd.id = x.id"
    " ON CONFLICT (run_id, domain_id, model_id, prompt_id) DO NOTHING"
    " RETURNING 1) "
    "SELECT upd.id IS NOT NULL, (SELECT count(*) FROM jobs j"
    " WHERE j.run_id = x.run_id AND j.domain_id = x.domain_id"
    "  AND j.id <> x.id AND j.status IN ('queued', 'failed')) "
    "FROM x LEFT JOIN upd ON upd.id = x.id ORDER BY x.ordinality";

/*
 * Of the (run, domain) of a batch with none of their jobs waiting, those
 * whose every job has ended, asked after the batch's commit: only those
 * are scored (ngx_dr_rescore_check()).  Two batches ending the last jobs
 * of a domain each ask after their own commit, so the later one sees
 * both ended.
 */
static const char  ngx_dr_runner_ended_sql[] =
    "SELECT p.run, p.domain"
    " FROM unnest($1::int8[], $2::int8[]) AS p(run, domain)"
    " WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = p.run"
    "  AND j.domain_id = p.domain"
    "  AND j.status IN ('queued', 'leased', 'failed'))";

static const char  ngx_dr_runner_failed_sql[] =
    "WITH upd AS ("
    " UPDATE jobs SET"
    "  status = CASE WHEN attempts >= max_attempts OR NOT $4::bool"
    "   THEN 'dead' ELSE 'failed' END,"
    "  not_before = now() + $3::int * interval '1 millisecond',"
    "  last_error = $5, lease_owner = NULL, lease_token = NULL,"
    "  lease_expires = NULL, updated_at = now()"
    " WHERE id = $1 AND status = 'leased' AND lease_token = $2::uuid"
    " RETURNING run_id, domain_id, status) "
    "SELECT upd.status = 'dead', (SELECT count(*) FROM jobs j"
    " WHERE j.run_id = upd.run_id AND j.domain_id = upd.domain_id"
    "  AND j.id <> $1 AND j.status IN ('queued', 'failed')) "
    "FROM upd";


ngx_int_t
ngx_dr_runner_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_periodic_t   *reaper;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || dmcf->providers == NULL || !ngx_dr_pg_configured()
        || !dmcf->runner)
    {
        return NGX_OK;
    }

    /* a long host name is cut, and the owner still NUL ended */
    *ngx_snprintf(ngx_dr_runner.owner, sizeof(ngx_dr_runner.owner) - 1,
                  "%V/%P", &cycle->hostname, ngx_pid) = '\0';
    (void) ngx_snprintf(ngx_dr_runner.lease, sizeof(ngx_dr_runner.lease),
                        "%M%Z", dmcf->runner_lease);

    ngx_dr_runner.provider_busy = ngx_pcalloc(cycle->pool,
                                  dmcf->providers->nelts * sizeof(ngx_uint_t));
    if (ngx_dr_runner.provider_busy == NULL) {
        return NGX_ERROR;
    }

    ngx_dr_runner.claim.handler = ngx_dr_runner_poll;
    ngx_dr_runner.claim.log = cycle->log;
    ngx_dr_runner.claim.cancelable = 1;

    /* not cancelable: answers waiting for their batch are paid for */
    ngx_queue_init(&ngx_dr_runner.answers);
    ngx_dr_runner.batch.handler = ngx_dr_runner_batch_send;
    ngx_dr_runner.batch.log = cycle->log;

    /* in every worker, about every second */

    reaper = &ngx_dr_runner.reaper;
    reaper->name = "the return of jobs whose lease expired";
    reaper->sql = ngx_dr_runner_reap_sql;
    reaper->interval = NGX_DR_RUNNER_REAP / 2;
    reaper->jitter = NGX_DR_RUNNER_REAP;
    reaper->done = ngx_dr_runner_reaped;

    /* the workers of a node do not all ask at the same moment */
    ngx_add_timer(&ngx_dr_runner.claim,
                  NGX_DR_RUNNER_POLL + ngx_random() % NGX_DR_RUNNER_POLL);
    ngx_dr_periodic_start(reaper, cycle->log,
                          NGX_DR_RUNNER_REAP
                          + ngx_random() % NGX_DR_RUNNER_REAP);

    return NGX_OK;
}


static void
ngx_dr_runner_reaped(ngx_dr_periodic_t *job, ngx_dr_pg_query_t *q)
{
    char  *n;

    if (q->rc != NGX_DR_PG_OK) {
        return;
    }

    n = PQcmdTuples(q->res);

    if (n[0] != '\0' && ngx_strcmp(n, "0") != 0) {
        ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                      "%s jobs whose lease expired are queued again", n);
        ngx_dr_runner_again(0);
    }
}


/* the next claim within delay ms, unless one is under way */

static void
ngx_dr_runner_again(ngx_msec_t delay)
{
    ngx_event_t  *ev;

    ev = &ngx_dr_runner.claim;

    if (ngx_exiting || ngx_dr_runner.claiming || ev->log == NULL) {
        return;
    }

    if (ev->timer_set) {
        if (delay >= NGX_DR_RUNNER_POLL) {
            return;
        }

        ngx_del_timer(ev);
    }

    ngx_add_timer(ev, delay);
}


/*
 * A worker claims of each provider only what its share of the provider's
 * keys can call within half a lease: a job claimed sooner than its token
 * comes would outlive its lease and be asked twice.
 */

static void
ngx_dr_runner_poll(ngx_event_t *ev)
{
    ngx_uint_t           n, want, left, *room, *give;
    ngx_pool_t          *pool;
    ngx_dr_main_conf_t  *dmcf;
    const char          *params[4];

    if (ngx_exiting) {
        /* a job leased and not done returns when its lease expires */
        return;
    }

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);
    n = dmcf->providers->nelts;

    want = (ngx_dr_runner.busy < dmcf->runner_jobs)
           ? dmcf->runner_jobs - ngx_dr_runner.busy : 0;

    pool = ngx_create_pool(1024, ev->log);
    if (pool == NULL) {
        ngx_add_timer(ev, NGX_DR_RUNNER_POLL);
        return;
    }

    room = ngx_pcalloc(pool, n * sizeof(ngx_uint_t));
    give = ngx_pcalloc(pool, n * sizeof(ngx_uint_t));

    if (room == NULL || give == NULL) {
        goto failed;
    }

    left = ngx_dr_runner_room(dmcf, room);
    ngx_dr_runner.asked = ngx_dr_runner_share(want, n, room, left, give);

    if (ngx_dr_runner.asked == 0
        || ngx_dr_runner_lists(pool, dmcf, give, &params[3], &params[1])
           != NGX_OK)
    {
        goto failed;
    }

    params[0] = (const char *) ngx_dr_runner.owner;
    params[2] = (const char *) ngx_dr_runner.lease;

    /*
     * Not prepared: its best plan depends on how many jobs are asked and
     * how many wait, which a plan made once for all would not know.
     */

    if (ngx_dr_pg_query(pool, ev->log, 0, 0, ngx_dr_runner_claim_sql, 4,
                        params, ngx_dr_runner_claimed, NULL)
        == NULL)
    {
        goto failed;
    }

    ngx_dr_runner.claiming = 1;

    return;

failed:

    ngx_destroy_pool(pool);
    ngx_add_timer(ev, NGX_DR_RUNNER_POLL);
}


/* the jobs of each provider this worker may take now; returns their sum */

static ngx_uint_t
ngx_dr_runner_room(ngx_dr_main_conf_t *dmcf, ngx_uint_t *room)
{
    uint64_t            cap;
    ngx_uint_t          i, left, workers;
    ngx_core_conf_t    *ccf;
    ngx_dr_provider_t  *pr;

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);
    workers = ccf->worker_processes > 0 ? ccf->worker_processes : 1;

    pr = dmcf->providers->elts;
    left = 0;

    for (i = 0; i < dmcf->providers->nelts; i++) {
        cap = (uint64_t) pr[i].rpm * pr[i].keys.nelts * dmcf->runner_lease
              / 2 / 60000 / workers;

        if (pr[i].tpm) {
            /* a call of the longest answer and a prompt of 400 bytes */
            cap = ngx_min(cap, (uint64_t) pr[i].tpm * pr[i].keys.nelts
                               * dmcf->runner_lease / 2 / 60000 / workers
                               / (NGX_DR_JOB_MAX_TOKENS + 100));
        }

        cap = ngx_max(cap, 1);
        cap = ngx_min(cap, pr[i].concurrency);

        room[i] = (ngx_dr_runner.provider_busy[i] < cap)
                  ? cap - ngx_dr_runner.provider_busy[i] : 0;
        left += room[i];
    }

    return left;
}


/*
 * When the providers' room is more than the worker may take, each gets
 * an equal share of it in turn (a provider with little room leaves the
 * rest to the others), so none waits behind the others.  Returns the
 * jobs asked for.
 */

static ngx_uint_t
ngx_dr_runner_share(ngx_uint_t want, ngx_uint_t n, ngx_uint_t *room,
    ngx_uint_t left, ngx_uint_t *give)
{
    ngx_uint_t  i, k, g, asked, share;

    asked = 0;

    while (asked < want && left > 0) {
        share = ngx_max((want - asked) / n, 1);

        for (k = 0; k < n && asked < want; k++) {
            i = (ngx_dr_runner.turn + k) % n;
            g = ngx_min(ngx_min(room[i] - give[i], share), want - asked);
            give[i] += g;
            asked += g;
            left -= g;
        }
    }

    ngx_dr_runner.turn++;

    return asked;
}


/* the providers given jobs and how many, as PostgreSQL array literals */

static ngx_int_t
ngx_dr_runner_lists(ngx_pool_t *pool, ngx_dr_main_conf_t *dmcf,
    ngx_uint_t *give, const char **names, const char **counts)
{
    u_char             *pn, *pc, *nb, *cb;
    size_t              len;
    ngx_uint_t          i, n;
    ngx_dr_provider_t  *pr;

    pr = dmcf->providers->elts;
    n = dmcf->providers->nelts;

    len = 3;

    for (i = 0; i < n; i++) {
        len += pr[i].name.len + 3;
    }

    nb = ngx_pnalloc(pool, len);
    cb = ngx_pnalloc(pool, n * (NGX_INT_T_LEN + 1) + 3);

    if (nb == NULL || cb == NULL) {
        return NGX_ERROR;
    }

    pn = ngx_cpymem(nb, "{", 1);
    pc = ngx_cpymem(cb, "{", 1);

    for (i = 0; i < n; i++) {
        if (give[i] == 0) {
            continue;
        }

        if (pn != nb + 1) {
            *pn++ = ',';
            *pc++ = ',';
        }

        pn = ngx_sprintf(pn, "\"%V\"", &pr[i].name);
        pc = ngx_sprintf(pc, "%ui", give[i]);
    }

    *pn++ = '}'; *pn = '\0';
    *pc++ = '}'; *pc = '\0';

    *names = (const char *) nb;
    *counts = (const char *) cb;

    return NGX_OK;
}


static void
ngx_dr_runner_claimed(ngx_dr_pg_query_t *q)
{
    int                   i, n;
    ngx_dr_runner_job_t  *qj;

    ngx_dr_runner.claiming = 0;
    n = (q->rc == NGX_DR_PG_OK) ? PQntuples(q->res) : 0;

    for (i = 0; i < n; i++) {
        qj = ngx_dr_runner_job(q->res, i);
        if (qj == NULL) {
            /* the others return when their leases expire */
            break;
        }

        ngx_dr_runner_take(qj, q->res, i);
    }

    ngx_destroy_pool(q->pool);

    /* all that was asked for: there may be more at once */
    ngx_dr_runner_again(n > 0 && (ngx_uint_t) n == ngx_dr_runner.asked
                        ? 0 : NGX_DR_RUNNER_POLL);
}


/* a claimed row, in a pool of its own that lives as long as the job */

static ngx_dr_runner_job_t *
ngx_dr_runner_job(PGresult *res, int row)
{
    size_t                len;
    ngx_pool_t           *pool;
    ngx_dr_job_t         *job;
    ngx_dr_main_conf_t   *dmcf;
    ngx_dr_runner_job_t  *qj;

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    qj = ngx_pcalloc(pool, sizeof(ngx_dr_runner_job_t));
    if (qj == NULL) {
        goto failed;
    }

#define ngx_dr_runner_id(field, col)                                          \
    (void) ngx_cpystrn(qj->field, (u_char *) PQgetvalue(res, row, col),       \
                       sizeof(qj->field))

    ngx_dr_runner_id(id, NGX_DR_CLAIM_ID);
    ngx_dr_runner_id(run_id, NGX_DR_CLAIM_RUN_ID);
    ngx_dr_runner_id(domain_id, NGX_DR_CLAIM_DOMAIN_ID);
    ngx_dr_runner_id(model_id, NGX_DR_CLAIM_MODEL_ID);
    ngx_dr_runner_id(prompt_id, NGX_DR_CLAIM_PROMPT_ID);
    ngx_dr_runner_id(token, NGX_DR_CLAIM_TOKEN);

#undef ngx_dr_runner_id

    qj->attempt = strtoul(PQgetvalue(res, row, NGX_DR_CLAIM_ATTEMPT), NULL,
                          10);
    qj->max = strtoul(PQgetvalue(res, row, NGX_DR_CLAIM_MAX), NULL, 10);
    qj->lease_end = ngx_current_msec + dmcf->runner_lease;
    qj->provider = -1;

    qj->store.handler = ngx_dr_runner_store;
    qj->store.data = qj;
    qj->store.log = ngx_cycle->log;
    qj->store.cancelable = 1;

    job = &qj->job;
    job->pool = pool;
    job->log = ngx_cycle->log;
    job->max_attempts = 1;
    job->done = ngx_dr_runner_job_done;
    job->data = qj;
    job->run_id = qj->run_id;

    /* the job id follows the calls, as a request id would */
    job->request_id.data = qj->id;
    job->request_id.len = ngx_strlen(qj->id);

    (void) ngx_snprintf(qj->trace_id, sizeof(qj->trace_id), "%032xL%Z",
                        (uint64_t) strtoull((char *) qj->id, NULL, 10));
    job->trace_id = qj->trace_id;

    len = PQgetlength(res, row, NGX_DR_CLAIM_MODEL);
    job->model.data = ngx_pnalloc(pool, len + 1);
    job->text = (char *) ngx_pstrdup(pool,
        &(ngx_str_t) { PQgetlength(res, row, NGX_DR_CLAIM_TEXT) + 1,
                       (u_char *) PQgetvalue(res, row, NGX_DR_CLAIM_TEXT) });

    if (job->model.data == NULL || job->text == NULL) {
        goto failed;
    }

    (void) ngx_cpystrn(job->model.data,
                       (u_char *) PQgetvalue(res, row, NGX_DR_CLAIM_MODEL),
                       len + 1);
    job->model.len = len;
    job->price_in = strtod(PQgetvalue(res, row, NGX_DR_CLAIM_PRICE_IN),
                           NULL);
    job->price_out = strtod(PQgetvalue(res, row, NGX_DR_CLAIM_PRICE_OUT),
                            NULL);

    return qj;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


/* the job is held here from now on, and its call starts */

static void
ngx_dr_runner_take(ngx_dr_runner_job_t *qj, PGresult *res, int row)
{
    ngx_str_t            name;
    ngx_uint_t           served;
    ngx_dr_job_t        *job;
    ngx_dr_provider_t   *pr;
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);
    job = &qj->job;

    name.data = (u_char *) PQgetvalue(res, row, NGX_DR_CLAIM_PROVIDER);
    name.len = PQgetlength(res, row, NGX_DR_CLAIM_PROVIDER);

    pr = ngx_dr_llm_find(dmcf->providers, name.data, name.len);

    ngx_dr_runner.busy++;

    if (pr) {
        qj->provider = pr->index;
        ngx_dr_runner.provider_busy[qj->provider]++;
    }

    served = pr ? ngx_dr_llm_has_model(pr, job->model.data, job->model.len)
                : 0;

    if (served == 0) {
        /* another node may serve it: tried again later */
        job->answer.kind = NGX_DR_ANSWER_RETRY;
        job->answer.retryable = 1;
        job->answer.retry_after_ms = 60000;
        (void) ngx_cpystrn((u_char *) job->answer.error,
                           (u_char *) "no provider here serves this model",
                           sizeof(job->answer.error));
        ngx_dr_runner_job_done(job);
        return;
    }

    job->model_index = served - 1;
    job->provider = pr;

    ngx_dr_job_start(job);
}


static void
ngx_dr_runner_job_done(ngx_dr_job_t *job)
{
    u_char               *p;
    long                  delay;
    const char          **params;
    ngx_dr_runner_job_t  *qj;

    qj = job->data;

    p = ngx_pnalloc(job->pool, 6 * NGX_INT64_LEN);
    params = ngx_palloc(job->pool,
                        NGX_DR_RUNNER_DONE_PARAMS * sizeof(const char *));

    if (p == NULL || params == NULL) {
        /* the lease expires and the job returns to the queue */
        ngx_dr_runner_finish(qj);
        return;
    }

    qj->params = params;

    if (job->answer.kind == NGX_DR_ANSWER_OK) {
        ngx_dr_runner_answer(qj, p);
        qj->sql = ngx_dr_runner_done_sql;
        qj->nparams = NGX_DR_RUNNER_DONE_PARAMS;
        ngx_dr_runner_batch_add(qj);
        return;
    }

    if (job->deferred) {
        (void) ngx_sprintf(p, "%l%Z", job->answer.retry_after_ms);
        params[0] = (const char *) qj->id;
        params[1] = (const char *) ngx_dr_runner.owner;
        params[2] = (const char *) p;
        params[3] = job->answer.error;
        ngx_dr_runner_send_end(qj, ngx_dr_runner_defer_sql,
                               NGX_DR_RUNNER_DEFER_PARAMS);
        return;
    }

    delay = ngx_dr_provider_backoff_ms(qj->attempt, 1000, 60000,
                                       job->answer.retry_after_ms,
                                       (unsigned) ngx_random() << 1
                                       ^ (unsigned) ngx_random());

    ngx_log_error(NGX_LOG_INFO, job->log, 0,
                  "job %s attempt %ui of %ui: %s", qj->id, qj->attempt,
                  qj->max, job->answer.error);

    (void) ngx_sprintf(p, "%l%Z", delay);

    ngx_dr_runner_send_failure(qj, (char *) p, job->answer.retryable,
                               job->answer.error);
}


/* the parameters of ngx_dr_runner_done_sql; p: room for six numbers */

static void
ngx_dr_runner_answer(ngx_dr_runner_job_t *qj, u_char *p)
{
    long long      cost;
    const char   **params;
    ngx_dr_job_t  *job;

    job = &qj->job;
    params = qj->params;

    cost = ngx_dr_provider_cost_micro(job->answer.input_tokens,
                                      job->answer.output_tokens,
                                      job->price_in, job->price_out);

    params[0] = (char *) qj->id;
    params[1] = (char *) qj->run_id;
    params[2] = (char *) qj->domain_id;
    params[3] = (char *) qj->model_id;
    params[4] = (char *) qj->prompt_id;
    params[5] = job->text;
    params[6] = job->answer.text;
    params[7] = job->answer.finish_reason;
    params[8] = (char *) p;
    p = ngx_sprintf(p, "%l%Z", job->status);
    params[9] = job->answer.input_tokens >= 0 ? (char *) p : NULL;
    p = ngx_sprintf(p, "%l%Z", job->answer.input_tokens);
    params[10] = job->answer.output_tokens >= 0 ? (char *) p : NULL;
    p = ngx_sprintf(p, "%l%Z", job->answer.output_tokens);
    params[11] = (char *) p;
    p = ngx_sprintf(p, "%L%Z", cost > 0 ? cost : 0);
    params[12] = (char *) p;
    (void) ngx_sprintf(p, "%M%Z", job->latency);
    params[13] = job->simulated ? "true" : "false";
    params[14] = (char *) qj->token;
}


/* a job's end: its answer, or its failed attempt and when to try again */

static void
ngx_dr_runner_send_end(ngx_dr_runner_job_t *qj, const char *sql,
    int nparams)
{
    qj->sql = sql;
    qj->nparams = nparams;
    qj->store_delay = 0;

    ngx_dr_runner_store(&qj->store);
}


static void
ngx_dr_runner_send_failure(ngx_dr_runner_job_t *qj, char *delay,
    ngx_uint_t retryable, char *error)
{
    qj->params[0] = (const char *) qj->id;
    qj->params[1] = (const char *) qj->token;
    qj->params[2] = delay;
    qj->params[3] = retryable ? "true" : "false";
    qj->params[4] = error;

    ngx_dr_runner_send_end(qj, ngx_dr_runner_failed_sql,
                           NGX_DR_RUNNER_FAILED_PARAMS);
}


/* an answer waits, at most a few milliseconds, for others */

static void
ngx_dr_runner_batch_add(ngx_dr_runner_job_t *qj)
{
    ngx_queue_insert_tail(&ngx_dr_runner.answers, &qj->queue);
    ngx_dr_runner.nanswers++;

    if (ngx_dr_runner.nanswers >= NGX_DR_RUNNER_BATCH_MAX || ngx_exiting) {
        ngx_dr_runner_batch_send(&ngx_dr_runner.batch);
        return;
    }

    if (!ngx_dr_runner.batch.timer_set) {
        ngx_add_timer(&ngx_dr_runner.batch, NGX_DR_RUNNER_BATCH_WAIT);
    }
}


/*
 * The answers waiting end their jobs in one statement.  An answer that
 * cannot be one (its text is not UTF-8) and a batch that cannot be sent
 * end their jobs one by one, as they would without batches.
 */

static void
ngx_dr_runner_batch_send(ngx_event_t *ev)
{
    char                   *text;
    json_t                 *rows, *row;
    ngx_msec_t              left;
    ngx_pool_t             *pool;
    ngx_queue_t            *qq, *next;
    const char             *params[1];
    ngx_dr_runner_job_t    *qj;
    ngx_dr_runner_batch_t  *b;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (ngx_queue_empty(&ngx_dr_runner.answers)) {
        return;
    }

    pool = ngx_create_pool(4096, ev->log);
    b = pool ? ngx_palloc(pool, sizeof(ngx_dr_runner_batch_t)) : NULL;
    rows = json_array();

    if (b == NULL || rows == NULL) {
        goto failed;
    }

    ngx_memzero(b, sizeof(ngx_dr_runner_batch_t));
    b->pool = pool;
    b->log = ev->log;
    ngx_queue_init(&b->jobs);

    if (ngx_array_init(&b->pairs, pool, 8, sizeof(ngx_dr_runner_pair_t))
        != NGX_OK)
    {
        goto failed;
    }

    while (!ngx_queue_empty(&ngx_dr_runner.answers)) {
        qq = ngx_queue_head(&ngx_dr_runner.answers);
        ngx_queue_remove(qq);
        ngx_queue_insert_tail(&b->jobs, qq);
    }

    ngx_dr_runner.nanswers = 0;

    /* the statement gives up before the first lease ends */
    left = NGX_MAX_INT32_VALUE;

    for (qq = ngx_queue_head(&b->jobs);
         qq != ngx_queue_sentinel(&b->jobs);
         qq = next)
    {
        next = ngx_queue_next(qq);
        qj = ngx_queue_data(qq, ngx_dr_runner_job_t, queue);

        row = ngx_dr_runner_batch_row(qj);

        if ((ngx_msec_int_t) (qj->lease_end - ngx_current_msec)
            <= NGX_DR_RUNNER_MARGIN
            || row == NULL || json_array_append_new(rows, row) != 0)
        {
            ngx_queue_remove(qq);
            ngx_dr_runner_send_end(qj, qj->sql, qj->nparams);
            continue;
        }

        left = ngx_min(left, qj->lease_end - ngx_current_msec
                             - NGX_DR_RUNNER_MARGIN);
    }

    if (ngx_queue_empty(&b->jobs)) {
        json_decref(rows);
        ngx_destroy_pool(pool);
        return;
    }

    text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);

    if (text == NULL) {
        ngx_dr_runner_batch_undo(b);
        return;
    }

    params[0] = text;

    /* the query keeps a copy of its parameters */

    if (ngx_dr_pg_query(pool, ev->log, NGX_DR_PG_PREPARE, left,
                        ngx_dr_runner_done_batch_sql, 1, params,
                        ngx_dr_runner_batch_stored, b)
        == NULL)
    {
        free(text);
        ngx_dr_runner_batch_undo(b);
        return;
    }

    free(text);

    return;

failed:

    if (rows) {
        json_decref(rows);
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    while (!ngx_queue_empty(&ngx_dr_runner.answers)) {
        qq = ngx_queue_head(&ngx_dr_runner.answers);
        ngx_queue_remove(qq);
        qj = ngx_queue_data(qq, ngx_dr_runner_job_t, queue);
        ngx_dr_runner_send_end(qj, qj->sql, qj->nparams);
    }

    ngx_dr_runner.nanswers = 0;
}


/* the parameters of ngx_dr_runner_done_sql as an object */

static json_t *
ngx_dr_runner_batch_row(ngx_dr_runner_job_t *qj)
{
    const char  **v;

    v = qj->params;

    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:s?,"
                     " s:s?, s:s, s:s, s:s, s:s}",
                     "id", v[0], "run_id", v[1], "domain_id", v[2],
                     "model_id", v[3], "prompt_id", v[4],
                     "prompt_text", v[5], "answer", v[6],
                     "finish_reason", v[7], "http_status", v[8],
                     "input_tokens", v[9], "output_tokens", v[10],
                     "cost", v[11], "latency_ms", v[12],
                     "simulated", v[13], "token", v[14]);
}


/* the jobs of a batch that was not stored end one by one */

static void
ngx_dr_runner_batch_undo(ngx_dr_runner_batch_t *b)
{
    ngx_queue_t          *qq, *next;
    ngx_dr_runner_job_t  *qj;

    /* the list goes with the batch's pool: each job is only sent on */
    for (qq = ngx_queue_head(&b->jobs);
         qq != ngx_queue_sentinel(&b->jobs);
         qq = next)
    {
        next = ngx_queue_next(qq);
        qj = ngx_queue_data(qq, ngx_dr_runner_job_t, queue);
        ngx_dr_runner_send_end(qj, qj->sql, qj->nparams);
    }

    ngx_destroy_pool(b->pool);
}


static void
ngx_dr_runner_batch_stored(ngx_dr_pg_query_t *q)
{
    int                     i;
    ngx_queue_t            *qq;
    ngx_dr_runner_job_t    *qj;
    ngx_dr_runner_batch_t  *b;

    b = q->data;

    if (q->rc != NGX_DR_PG_OK) {
        /*
         * One by one, each with its retries and its refusal: a batch that
         * committed before its connection was lost finds its jobs no
         * longer held, and stores nothing twice.
         */
        ngx_log_error(NGX_LOG_INFO, q->log, 0,
                      "a batch of answers could not be stored (%V): "
                      "storing them one by one", &q->error);
        ngx_dr_runner_batch_undo(b);
        return;
    }

    i = 0;

    while (!ngx_queue_empty(&b->jobs)) {
        qq = ngx_queue_head(&b->jobs);
        ngx_queue_remove(qq);
        qj = ngx_queue_data(qq, ngx_dr_runner_job_t, queue);

        if (i >= PQntuples(q->res) || PQgetvalue(q->res, i, 0)[0] != 't') {
            ngx_log_error(NGX_LOG_NOTICE, qj->job.log, 0,
                          "job %s was no longer held by its claim when its "
                          "outcome came: nothing stored", qj->id);

        } else if (ngx_strcmp(PQgetvalue(q->res, i, 1), "0") == 0) {
            ngx_dr_runner_batch_pair(b, qj);
        }

        i++;
        ngx_dr_runner_finish(qj);
    }

    ngx_dr_runner_batch_check(b);

    ngx_dr_runner_again(0);
}


/* a (run, domain) to check, once in a batch */

static void
ngx_dr_runner_batch_pair(ngx_dr_runner_batch_t *b, ngx_dr_runner_job_t *qj)
{
    ngx_uint_t             i;
    ngx_dr_runner_pair_t  *pair;

    pair = b->pairs.elts;

    for (i = 0; i < b->pairs.nelts; i++) {
        if (ngx_strcmp(pair[i].run, qj->run_id) == 0
            && ngx_strcmp(pair[i].domain, qj->domain_id) == 0)
        {
            return;
        }
    }

    pair = ngx_array_push(&b->pairs);

    if (pair != NULL) {
        /* the job's own copies go with its pool */
        pair->run = ngx_pnalloc(b->pool, sizeof(qj->run_id));
        pair->domain = ngx_pnalloc(b->pool, sizeof(qj->domain_id));

        if (pair->run && pair->domain) {
            (void) ngx_cpystrn(pair->run, qj->run_id, sizeof(qj->run_id));
            (void) ngx_cpystrn(pair->domain, qj->domain_id,
                               sizeof(qj->domain_id));
            return;
        }

        b->pairs.nelts--;
    }

    /* checked alone, as without batches */
    (void) ngx_dr_rescore_check(qj->run_id, qj->domain_id, qj->job.log,
                                NULL, NULL);
}


/*
 * The (run, domain) whose every job has ended are scored; when the
 * database cannot say which, each is checked as without batches.
 */

static void
ngx_dr_runner_batch_check(ngx_dr_runner_batch_t *b)
{
    u_char                *p, *runs, *domains;
    ngx_uint_t             i;
    const char            *params[2];
    ngx_dr_runner_pair_t  *pair;

    if (b->pairs.nelts == 0) {
        ngx_destroy_pool(b->pool);
        return;
    }

    /* "{1,2}" and "{7,9}" */

    runs = ngx_pnalloc(b->pool, b->pairs.nelts * (NGX_INT64_LEN + 1) + 2);
    domains = ngx_pnalloc(b->pool, b->pairs.nelts * (NGX_INT64_LEN + 1) + 2);

    if (runs == NULL || domains == NULL) {
        goto alone;
    }

    pair = b->pairs.elts;

    for (p = runs, i = 0; i < b->pairs.nelts; i++) {
        p = ngx_sprintf(p, "%c%s", i ? ',' : '{', pair[i].run);
    }

    *ngx_cpymem(p, "}", 1) = '\0';

    for (p = domains, i = 0; i < b->pairs.nelts; i++) {
        p = ngx_sprintf(p, "%c%s", i ? ',' : '{', pair[i].domain);
    }

    *ngx_cpymem(p, "}", 1) = '\0';

    params[0] = (const char *) runs;
    params[1] = (const char *) domains;

    if (ngx_dr_pg_query(b->pool, b->log, NGX_DR_PG_PREPARE, 0,
                        ngx_dr_runner_ended_sql, 2, params,
                        ngx_dr_runner_batch_checked, b)
        != NULL)
    {
        return;
    }

alone:

    ngx_dr_runner_batch_alone(b);
}


static void
ngx_dr_runner_batch_checked(ngx_dr_pg_query_t *q)
{
    int                     i, n;
    ngx_dr_runner_batch_t  *b;

    b = q->data;

    if (q->rc != NGX_DR_PG_OK) {
        ngx_dr_runner_batch_alone(b);
        return;
    }

    n = PQntuples(q->res);

    for (i = 0; i < n; i++) {
        (void) ngx_dr_rescore_check((u_char *) PQgetvalue(q->res, i, 0),
                                    (u_char *) PQgetvalue(q->res, i, 1),
                                    b->log, NULL, NULL);
    }

    ngx_destroy_pool(b->pool);
}


/* each (run, domain) of the batch checked as without batches */

static void
ngx_dr_runner_batch_alone(ngx_dr_runner_batch_t *b)
{
    ngx_uint_t             i;
    ngx_dr_runner_pair_t  *pair;

    pair = b->pairs.elts;

    for (i = 0; i < b->pairs.nelts; i++) {
        (void) ngx_dr_rescore_check(pair[i].run, pair[i].domain, b->log,
                                    NULL, NULL);
    }

    ngx_destroy_pool(b->pool);
}


/*
 * The statement that ends a job.  When the database cannot take it (down,
 * or too many queries waiting), it is tried again, 100 ms doubling to 5 s,
 * while the job's lease lasts: the answer has been paid for.  After that,
 * or when the worker is exiting, the job returns to the queue when its
 * lease expires.
 */

static void
ngx_dr_runner_store(ngx_event_t *ev)
{
    ngx_msec_int_t        left;
    ngx_dr_runner_job_t  *qj;

    qj = ev->data;

    /*
     * Also while the worker exits: the answer is paid for.  A statement
     * still waiting for a connection when the lease is about to end gives
     * up, since another worker may take the job then.
     */

    left = (ngx_msec_int_t) (qj->lease_end - ngx_current_msec)
           - NGX_DR_RUNNER_MARGIN;

    if (left > 0
        && ngx_dr_pg_query(qj->job.pool, qj->job.log, NGX_DR_PG_PREPARE,
                           (ngx_msec_t) left, qj->sql, qj->nparams,
                           qj->params,
                           ngx_dr_runner_stored, qj)
           != NULL)
    {
        return;
    }

    ngx_dr_runner_finish(qj);
}


static void
ngx_dr_runner_stored(ngx_dr_pg_query_t *q)
{
    u_char               *p;
    ngx_msec_int_t        left;
    ngx_dr_runner_job_t  *qj;

    qj = q->data;

    if (q->rc == NGX_DR_PG_FAILED && qj->sql == ngx_dr_runner_done_sql) {
        /*
         * the database refused the answer itself (a value out of range):
         * asking again would be refused the same way, so the job is dead
         * with the database's reason
         */
        ngx_log_error(NGX_LOG_ERR, qj->job.log, 0,
                      "the answer of job %s was refused by the database: "
                      "%V", qj->id, &q->error);

        p = ngx_dr_runner_refused(qj->job.pool, &q->error);

        if (p != NULL) {
            ngx_dr_runner_send_failure(qj, "0", 0, (char *) p);
            return;
        }

    } else if (q->rc != NGX_DR_PG_OK) {
        qj->store_delay = qj->store_delay ? ngx_min(2 * qj->store_delay, 5000)
                                          : 100;
        left = (ngx_msec_int_t) (qj->lease_end - ngx_current_msec)
               - NGX_DR_RUNNER_MARGIN;

        if (q->rc == NGX_DR_PG_UNAVAILABLE
            && left > (ngx_msec_int_t) qj->store_delay)
        {
            ngx_log_error(NGX_LOG_INFO, qj->job.log, 0,
                          "the outcome of job %s could not be stored yet "
                          "(%V); trying again in %M ms", qj->id, &q->error,
                          qj->store_delay);
            ngx_add_timer(&qj->store, qj->store_delay);
            return;
        }

        ngx_log_error(NGX_LOG_WARN, qj->job.log, 0,
                      "the outcome of job %s could not be stored; it "
                      "returns to the queue when its lease expires",
                      qj->id);

    } else if (PQntuples(q->res) != 1
               || (qj->sql == ngx_dr_runner_done_sql
                   && PQgetvalue(q->res, 0, 0)[0] != 't'))
    {
        /* the lease expired meanwhile: the job is another claim's now */
        ngx_log_error(NGX_LOG_NOTICE, qj->job.log, 0,
                      "job %s was no longer held by its claim when its "
                      "outcome came: nothing stored", qj->id);

    } else if (PQgetvalue(q->res, 0, 0)[0] == 't'
               && ngx_strcmp(PQgetvalue(q->res, 0, 1), "0") == 0)
    {
        /*
         * the job ended and none of its (run, domain) waits to be
         * claimed: the others may still be in flight, which the check
         * after this commit sees
         */
        (void) ngx_dr_rescore_check(qj->run_id, qj->domain_id, qj->job.log,
                                    NULL, NULL);
    }

    /* the pool q lives in goes with the job */
    ngx_dr_runner_finish(qj);

    ngx_dr_runner_again(0);
}


static u_char *
ngx_dr_runner_refused(ngx_pool_t *pool, ngx_str_t *error)
{
    u_char  *p;

    p = ngx_pnalloc(pool, error->len + sizeof("the answer could not be "
                                              "stored: "));
    if (p == NULL) {
        return NULL;
    }

    (void) ngx_sprintf(p, "the answer could not be stored: %V%Z", error);

    return p;
}


/*
 * The job is no longer held here: it ended, or it returns to the queue
 * when its lease expires.
 */

static void
ngx_dr_runner_finish(ngx_dr_runner_job_t *qj)
{
    ngx_dr_job_release(&qj->job);

    ngx_dr_runner.busy--;

    if (qj->provider >= 0) {
        ngx_dr_runner.provider_busy[qj->provider]--;
    }

    ngx_destroy_pool(qj->job.pool);
}

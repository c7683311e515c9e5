
/*
 * Domain Runner: POST /admin/probe {domain}.
 *
 * Every active model of a configured provider is asked every active
 * prompt about the domain, all at once, each call a job of its own
 * (ngx_dr_job.c: the provider key's bucket, the breaker, retries), and
 * the answers and their scores come back in the same HTTP response.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_probe.h"
#include "ngx_dr_job.h"
#include "ngx_dr_score.h"
#include "ngx_dr_validate.h"
#include <openssl/rand.h>


#define NGX_DR_PROBE_ATTEMPTS     3
#define NGX_DR_PROBE_MAX_BODY     4096

/* the columns of ngx_dr_probe_sql */
#define NGX_DR_PROBE_DOMAIN       0
#define NGX_DR_PROBE_PROMPT       1
#define NGX_DR_PROBE_TEXT         2
#define NGX_DR_PROBE_PROVIDER     3
#define NGX_DR_PROBE_MODEL        4
#define NGX_DR_PROBE_PRICE_IN     5
#define NGX_DR_PROBE_PRICE_OUT    6


typedef struct {
    ngx_http_request_t       *request;
    ngx_str_t                 domain;
    u_char                    trace_id[33];   /* W3C trace context */
    ngx_array_t               jobs;           /* of ngx_dr_job_t */
    ngx_uint_t                pending;
    unsigned                  starting:1;
} ngx_dr_probe_t;


static void ngx_dr_probe_body(ngx_http_request_t *r);
static u_char *ngx_dr_probe_domain(ngx_http_request_t *r, ngx_str_t *text,
    ngx_int_t *rc);
static ngx_int_t ngx_dr_probe_loaded(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_dr_probe_t *ngx_dr_probe_create(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_probe_job(ngx_dr_probe_t *probe,
    ngx_dr_pg_query_t *q, int row);
static ngx_int_t ngx_dr_probe_start(ngx_dr_probe_t *probe);
static void ngx_dr_probe_job_done(ngx_dr_job_t *job);
static void ngx_dr_probe_respond(ngx_dr_probe_t *probe);
static ngx_int_t ngx_dr_probe_answer(ngx_dr_probe_t *probe);
static json_t *ngx_dr_probe_answer_json(ngx_dr_job_t *job);
static json_t *ngx_dr_probe_scores(ngx_dr_probe_t *probe);
static void ngx_dr_probe_cleanup(void *data);
static void ngx_dr_probe_trace(ngx_http_request_t *r, ngx_dr_probe_t *probe);


static const char  ngx_dr_probe_sql[] =
    "SELECT d.domain, p.name, replace(p.template, '{domain}', d.domain),"
    " m.provider, m.model, m.input_price_mtok, m.output_price_mtok "
    "FROM domains d CROSS JOIN prompts p CROSS JOIN models m "
    "WHERE d.domain = $1 AND d.active AND p.active AND p.kind = 'standard'"
    " AND m.active "
    "ORDER BY m.provider, m.model, p.name";


ngx_int_t
ngx_dr_probe_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return NGX_DECLINED;
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_dr_probe_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_dr_probe_body(ngx_http_request_t *r)
{
    u_char      *domain;
    ngx_int_t    rc;
    ngx_str_t    text;
    const char  *params[1];

    rc = ngx_dr_http_body(r, NGX_DR_PROBE_MAX_BODY, &text);

    if (rc != NGX_OK) {
        rc = (rc == NGX_DECLINED)
             ? ngx_dr_json_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                 "body_too_large",
                                 "the request body is larger than 4 KiB")
             : NGX_HTTP_INTERNAL_SERVER_ERROR;
        ngx_http_finalize_request(r, rc);
        return;
    }

    domain = ngx_dr_probe_domain(r, &text, &rc);

    if (domain != NULL) {
        params[0] = (const char *) domain;
        rc = ngx_dr_http_query(r, 0, 0, ngx_dr_probe_sql, 1, params,
                              ngx_dr_probe_loaded);
    }

    ngx_http_finalize_request(r, rc);
}


/* the body's domain, valid and NUL ended; or NULL and the error's answer */

static u_char *
ngx_dr_probe_domain(ngx_http_request_t *r, ngx_str_t *text, ngx_int_t *rc)
{
    int            valid;
    u_char        *out;
    size_t         len;
    json_t        *body, *domain;
    ngx_str_t      d;
    json_error_t   err;

    body = json_loadb((char *) text->data, text->len, JSON_REJECT_DUPLICATES,
                      &err);

    *rc = ngx_dr_http_fields(r, body, "domain");
    if (*rc != NGX_DECLINED) {
        json_decref(body);
        return NULL;
    }

    domain = json_object_get(body, "domain");

    if (!json_is_string(domain)) {
        json_decref(body);
        *rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_domain",
                                "domain: a string is needed");
        return NULL;
    }

    len = json_string_length(domain);
    out = ngx_pnalloc(r->pool, len + 1);
    if (out == NULL) {
        json_decref(body);
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    valid = ngx_dr_validate_domain((u_char *) json_string_value(domain), len,
                                   out, &d.len);
    json_decref(body);

    if (valid != NGX_DR_VALID_OK) {
        *rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_domain",
                                "domain: %s", ngx_dr_validate_reason(valid));
        return NULL;
    }

    out[d.len] = '\0';

    return out;
}


static ngx_int_t
ngx_dr_probe_loaded(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    int                  i, n;
    ngx_uint_t           k;
    ngx_str_t           *rid;
    ngx_dr_job_t        *job;
    ngx_dr_probe_t      *probe;
    ngx_pool_cleanup_t  *cln;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    n = PQntuples(q->res);

    if (n == 0) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "unknown domain, or no active model and "
                                 "prompt");
    }

    probe = ngx_dr_probe_create(r, q);
    if (probe == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_dr_probe_job(probe, q, i) == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (probe->jobs.nelts == 0) {
        return ngx_dr_json_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "no_provider",
                                 "no configured provider serves an active "
                                 "model");
    }

    ngx_dr_probe_trace(r, probe);

    rid = ngx_dr_request_id(r);
    job = probe->jobs.elts;

    for (k = 0; rid && k < probe->jobs.nelts; k++) {
        job[k].request_id = *rid;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_dr_probe_cleanup;
    cln->data = probe;

    return ngx_dr_probe_start(probe);
}


static ngx_dr_probe_t *
ngx_dr_probe_create(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    ngx_dr_probe_t  *probe;

    probe = ngx_pcalloc(r->pool, sizeof(ngx_dr_probe_t));
    if (probe == NULL
        || ngx_array_init(&probe->jobs, r->pool, PQntuples(q->res),
                          sizeof(ngx_dr_job_t))
           != NGX_OK)
    {
        return NULL;
    }

    probe->request = r;
    probe->domain.len = PQgetlength(q->res, 0, NGX_DR_PROBE_DOMAIN);
    probe->domain.data = ngx_pnalloc(r->pool, probe->domain.len);
    if (probe->domain.data == NULL) {
        return NULL;
    }

    ngx_memcpy(probe->domain.data,
               PQgetvalue(q->res, 0, NGX_DR_PROBE_DOMAIN),
               probe->domain.len);

    return probe;
}


/* the row's call: NGX_DECLINED when no provider here serves its model */

static ngx_int_t
ngx_dr_probe_job(ngx_dr_probe_t *probe, ngx_dr_pg_query_t *q, int row)
{
    u_char              *p;
    PGresult            *res;
    ngx_str_t            provider, model, prompt, text;
    ngx_uint_t           served;
    ngx_dr_job_t        *job;
    ngx_http_request_t  *r;
    ngx_dr_provider_t   *pr;
    ngx_dr_main_conf_t  *dmcf;

    r = probe->request;
    res = q->res;
    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);

    provider.data = (u_char *) PQgetvalue(res, row, NGX_DR_PROBE_PROVIDER);
    provider.len = PQgetlength(res, row, NGX_DR_PROBE_PROVIDER);
    model.data = (u_char *) PQgetvalue(res, row, NGX_DR_PROBE_MODEL);
    model.len = PQgetlength(res, row, NGX_DR_PROBE_MODEL);
    prompt.data = (u_char *) PQgetvalue(res, row, NGX_DR_PROBE_PROMPT);
    prompt.len = PQgetlength(res, row, NGX_DR_PROBE_PROMPT);
    text.data = (u_char *) PQgetvalue(res, row, NGX_DR_PROBE_TEXT);
    text.len = PQgetlength(res, row, NGX_DR_PROBE_TEXT);

    pr = ngx_dr_llm_find(dmcf->providers, provider.data, provider.len);
    served = pr ? ngx_dr_llm_has_model(pr, model.data, model.len) : 0;

    if (served == 0) {
        /* a model of the database no provider here serves */
        return NGX_DECLINED;
    }

    job = ngx_array_push(&probe->jobs);
    if (job == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(job, sizeof(ngx_dr_job_t));

    /* the model, the prompt's name and its text, each NUL ended */

    p = ngx_pnalloc(r->pool, model.len + prompt.len + text.len + 3);
    if (p == NULL) {
        return NGX_ERROR;
    }

    job->model.data = p;
    job->model.len = model.len;
    p = ngx_cpymem(p, model.data, model.len);
    *p++ = '\0';

    job->prompt.data = p;
    job->prompt.len = prompt.len;
    p = ngx_cpymem(p, prompt.data, prompt.len);
    *p++ = '\0';

    job->text = (char *) p;
    p = ngx_cpymem(p, text.data, text.len);
    *p = '\0';

    job->provider = pr;
    job->model_index = served - 1;
    job->price_in = strtod(PQgetvalue(res, row, NGX_DR_PROBE_PRICE_IN), NULL);
    job->price_out = strtod(PQgetvalue(res, row, NGX_DR_PROBE_PRICE_OUT),
                            NULL);

    job->pool = r->pool;
    job->log = r->connection->log;
    job->trace_id = probe->trace_id;
    job->max_attempts = NGX_DR_PROBE_ATTEMPTS;
    job->done = ngx_dr_probe_job_done;
    job->data = probe;

    return NGX_OK;
}


/*
 * Every call starts.  When all of them end at once (every breaker open,
 * a token budget too small, calls that cannot start), the answer is sent
 * here and the caller finalizes the request, once; else the request lives
 * on until the last call has its outcome.
 */

static ngx_int_t
ngx_dr_probe_start(ngx_dr_probe_t *probe)
{
    ngx_uint_t     i;
    ngx_dr_job_t  *job;

    probe->pending = probe->jobs.nelts;
    probe->starting = 1;

    job = probe->jobs.elts;

    for (i = 0; i < probe->jobs.nelts; i++) {
        ngx_dr_job_start(&job[i]);
    }

    probe->starting = 0;

    if (probe->pending == 0) {
        return ngx_dr_probe_answer(probe);
    }

    probe->request->main->count++;

    return NGX_DONE;
}


static void
ngx_dr_probe_job_done(ngx_dr_job_t *job)
{
    ngx_dr_probe_t  *probe;

    probe = job->data;

    if (--probe->pending == 0 && !probe->starting) {
        ngx_dr_probe_respond(probe);
    }
}


/* the last call had its outcome, after the probe started */

static void
ngx_dr_probe_respond(ngx_dr_probe_t *probe)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = probe->request;
    c = r->connection;

    rc = ngx_dr_probe_answer(probe);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* every call has its outcome: the answers, scored */

static ngx_int_t
ngx_dr_probe_answer(ngx_dr_probe_t *probe)
{
    json_t        *answers, *a, *scores, *body;
    ngx_uint_t     i, simulated;
    ngx_dr_job_t  *job;

    job = probe->jobs.elts;
    answers = json_array();
    simulated = 0;

    for (i = 0; i < probe->jobs.nelts; i++) {
        a = ngx_dr_probe_answer_json(&job[i]);

        if (a) {
            json_array_append_new(answers, a);
        }

        simulated |= job[i].simulated;
    }

    scores = ngx_dr_probe_scores(probe);

    body = json_pack("{s:o, s:b, s:o, s:o}",
                     "domain", ngx_dr_json_str(&probe->domain),
                     "simulated", (int) simulated,
                     "answers", answers,
                     "scores", scores ? scores : json_null());

    return ngx_dr_json_send(probe->request, NGX_HTTP_OK, body);
}


static json_t *
ngx_dr_probe_answer_json(ngx_dr_job_t *job)
{
    json_t           *a;
    ngx_dr_answer_t  *answer;

    answer = &job->answer;

    a = json_pack("{s:o, s:s, s:s, s:s, s:I, s:i, s:I, s:b}",
                  "provider", ngx_dr_json_str(&job->provider->name),
                  "model", (char *) job->model.data,
                  "prompt", (char *) job->prompt.data,
                  "status", answer->kind == NGX_DR_ANSWER_OK ? "ok"
                                                             : "failed",
                  "http_status", (json_int_t) job->status,
                  "attempts", (int) job->attempts,
                  "latency_ms", (json_int_t) job->latency,
                  "simulated", job->simulated);

    if (a == NULL) {
        return NULL;
    }

    if (answer->kind != NGX_DR_ANSWER_OK) {
        json_object_set_new(a, "error", json_string(answer->error));
        return a;
    }

    json_object_set_new(a, "text",
                        json_stringn(answer->text, answer->text_len));
    json_object_set_new(a, "finish_reason",
                        json_string(answer->finish_reason));
    json_object_set_new(a, "input_tokens",
                        answer->input_tokens >= 0
                        ? json_integer(answer->input_tokens) : json_null());
    json_object_set_new(a, "output_tokens",
                        answer->output_tokens >= 0
                        ? json_integer(answer->output_tokens) : json_null());

    return a;
}


/* the scores of the answers, as a crawl's would be; NULL if none */

static json_t *
ngx_dr_probe_scores(ngx_dr_probe_t *probe)
{
    u_char                 *name;
    json_t                 *scores;
    ngx_uint_t              i, ok;
    ngx_dr_job_t           *job;
    ngx_pool_t             *pool;
    ngx_dr_score_input_t    in;
    ngx_dr_score_answer_t  *sa;
    ngx_dr_score_result_t   res;

    pool = probe->request->pool;
    job = probe->jobs.elts;

    sa = ngx_pcalloc(pool, probe->jobs.nelts * sizeof(ngx_dr_score_answer_t));
    if (sa == NULL) {
        return NULL;
    }

    for (i = 0; i < probe->jobs.nelts; i++) {
        ok = (job[i].answer.kind == NGX_DR_ANSWER_OK);

        /* "provider/model", as the scores of a crawl name a model */
        name = ngx_pnalloc(pool, job[i].provider->name.len + job[i].model.len
                                 + 2);
        if (name == NULL) {
            return NULL;
        }

        (void) ngx_sprintf(name, "%V/%V%Z", &job[i].provider->name,
                           &job[i].model);

        sa[i].model = (char *) name;
        sa[i].prompt = (char *) job[i].prompt.data;
        sa[i].http_status = ok ? 200 : (int) job[i].status;
        sa[i].text = ok ? job[i].answer.text : "";
        sa[i].text_len = ok ? job[i].answer.text_len : 0;
    }

    ngx_memzero(&in, sizeof(ngx_dr_score_input_t));
    in.domain = (char *) ngx_dr_cstr(pool, &probe->domain);
    in.answers = sa;
    in.n_answers = probe->jobs.nelts;
    in.expected = probe->jobs.nelts;

    ngx_memzero(&res, sizeof(ngx_dr_score_result_t));
    scores = NULL;

    if (in.domain && ngx_dr_score_domain(&in, &res) == 0) {
        scores = json_pack("{s:f, s:f, s:f, s:i, s:i, s:i, s:i, s:s, s:f}",
                           "memory_score", res.memory_score,
                           "ai_consensus", res.ai_consensus,
                           "cohesion", res.cohesion,
                           "models_positive", (int) res.models_positive,
                           "models_neutral", (int) res.models_neutral,
                           "models_negative", (int) res.models_negative,
                           "reputation_risk", (int) res.risk,
                           "risk_level",
                           ngx_dr_score_risk_name(res.risk_level),
                           "score", res.score);
    }

    ngx_dr_score_result_free(&res);

    return scores;
}


/* the request went away (or is done): nothing may wait on it */

static void
ngx_dr_probe_cleanup(void *data)
{
    ngx_dr_probe_t  *probe = data;

    ngx_uint_t     i;
    ngx_dr_job_t  *job;

    job = probe->jobs.elts;

    for (i = 0; i < probe->jobs.nelts; i++) {
        ngx_dr_job_release(&job[i]);
    }
}


/* the trace this probe belongs to: the client's, or a new one */

static void
ngx_dr_probe_trace(ngx_http_request_t *r, ngx_dr_probe_t *probe)
{
    u_char            *v;
    ngx_uint_t         i, zero;
    ngx_table_elt_t   *h;
    u_char             id[16];

    /* 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags> */

    if (ngx_dr_http_headers_in(r, "traceparent", &h, 1) == 1
        && h->value.len == 55)
    {
        v = h->value.data;
        zero = (v[0] == '0' && v[1] == '0' && v[2] == '-' && v[35] == '-'
                && v[52] == '-') ? 1 : 2;

        for (i = 3; zero != 2 && i < 35; i++) {
            if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
            {
                zero = 2;

            } else if (v[i] != '0') {
                zero = 0;
            }
        }

        if (zero == 0) {
            ngx_memcpy(probe->trace_id, v + 3, 32);
            probe->trace_id[32] = '\0';
            return;
        }
    }

    if (RAND_bytes(id, sizeof(id)) != 1) {
        ngx_memset(id, 0x5a, sizeof(id));
    }

    *ngx_hex_dump(probe->trace_id, id, sizeof(id)) = '\0';
}

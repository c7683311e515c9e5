
/*
 * Domain Runner: the runner, which puts the prompts to the models.
 *
 * POST /admin/probe {domain}: every active model of a configured provider
 * is asked every active prompt about the domain, all at once; each call
 * waits for a token of its provider key's bucket (shared by the workers,
 * so the provider's limit is never exceeded), retries 429, 5xx, timeouts
 * and unusable answers with exponential backoff and jitter (1 s doubling
 * to 60 s, 3 attempts, Retry-After honoured), and the answers and their
 * scores come back in the same HTTP response.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_runner.h"
#include "ngx_dr_scores.h"
#include "ngx_dr_llm.h"
#include "ngx_dr_provider.h"
#include "ngx_dr_score.h"
#include "ngx_dr_validate.h"
#include <openssl/rand.h>


#define NGX_DR_PROBE_ATTEMPTS     3
#define NGX_DR_PROBE_MAX_TOKENS   600
#define NGX_DR_PROBE_TIMEOUT      60000
#define NGX_DR_PROBE_MAX_ANSWER   (1024 * 1024)

/* five failures in a row open a provider's breaker for 30 s */
#define NGX_DR_BREAKER_FAILURES   5
#define NGX_DR_BREAKER_OPEN_S     30


typedef struct ngx_dr_probe_s  ngx_dr_probe_t;

typedef struct ngx_dr_probe_job_s  ngx_dr_probe_job_t;

typedef void (*ngx_dr_job_done_pt)(ngx_dr_probe_job_t *job);

/* one prompt to one model: of a probe, or a job of the queue */
struct ngx_dr_probe_job_s {
    ngx_dr_probe_t           *probe;       /* NULL for a queued job */
    ngx_pool_t               *pool;
    ngx_log_t                *log;
    ngx_str_t                 request_id;
    u_char                   *trace_id;
    ngx_uint_t                max_attempts;
    ngx_dr_job_done_pt        done;
    void                     *data;
    ngx_dr_provider_t        *provider;
    ngx_str_t                 model;
    ngx_str_t                 prompt;       /* its name */
    char                     *text;         /* the prompt sent */
    ngx_str_t                *key;          /* of the last attempt */
    ngx_uint_t                model_index;  /* in the provider's models */
    double                    price_in;     /* dollars a million tokens */
    double                    price_out;
    ngx_uint_t                attempts;
    ngx_dr_llm_call_t         call;
    ngx_event_t               wait;
    ngx_dr_answer_t           answer;
    long                      status;
    ngx_msec_t                latency;
    unsigned                  parsed:1;
    unsigned                  paid:1;       /* its tokens taken ahead */
    unsigned                  calling:1;
    unsigned                  finished:1;
    unsigned                  simulated:1;
};


struct ngx_dr_probe_s {
    ngx_http_request_t       *request;
    ngx_str_t                 domain;
    u_char                    trace_id[33];   /* W3C trace context */
    ngx_array_t               jobs;         /* of ngx_dr_probe_job_t */
    ngx_uint_t                pending;
};


static void ngx_dr_probe_body(ngx_http_request_t *r);
static ngx_int_t ngx_dr_probe_loaded(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static void ngx_dr_probe_attempt(ngx_dr_probe_job_t *job);
static void ngx_dr_probe_wait(ngx_event_t *ev);
static void ngx_dr_probe_answered(ngx_dr_llm_call_t *call);
static void ngx_dr_probe_finish(ngx_dr_probe_job_t *job);
static void ngx_dr_probe_job_done(ngx_dr_probe_job_t *job);
static void ngx_dr_probe_respond(ngx_dr_probe_t *probe);
static void ngx_dr_probe_cleanup(void *data);
static void ngx_dr_probe_trace(ngx_http_request_t *r, ngx_dr_probe_t *probe);
static ngx_uint_t ngx_dr_breaker_allow(ngx_dr_provider_t *pr);
static void ngx_dr_breaker_result(ngx_dr_provider_t *pr, ngx_uint_t ok,
    ngx_log_t *log);
static ngx_uint_t ngx_dr_provider_index(ngx_dr_provider_t *pr);
static ngx_int_t ngx_dr_limit_or(ngx_int_t tokens, ngx_uint_t full);
static void ngx_dr_provider_tiers(ngx_dr_provider_t *pr,
    ngx_dr_tier_t *tier, ngx_dr_tier_t *ttier);
static json_t *ngx_dr_providers_base(ngx_str_t *base);


static const char  ngx_dr_probe_sql[] =
    "SELECT d.domain, p.name, replace(p.template, '{domain}', d.domain),"
    " m.provider, m.model, m.input_price_mtok, m.output_price_mtok "
    "FROM domains d CROSS JOIN prompts p CROSS JOIN models m "
    "WHERE d.domain = $1 AND d.active AND p.active AND m.active "
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
    int            rc;
    u_char        *out;
    size_t         len;
    json_t        *body, *domain;
    ngx_int_t      n;
    ngx_str_t      d, text;
    const char    *key, *params[1];
    json_t        *v;
    json_error_t   err;

    n = ngx_dr_http_body(r, 4096, &text);

    if (n != NGX_OK) {
        n = (n == NGX_DECLINED)
            ? ngx_dr_json_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                "body_too_large",
                                "the request body is larger than 4 KiB")
            : NGX_HTTP_INTERNAL_SERVER_ERROR;
        ngx_http_finalize_request(r, n);
        return;
    }

    body = json_loadb((char *) text.data, text.len, JSON_REJECT_DUPLICATES,
                      &err);

    if (!json_is_object(body)) {
        json_decref(body);
        n = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                              "a JSON object {\"domain\"} is needed");
        ngx_http_finalize_request(r, n);
        return;
    }

    json_object_foreach(body, key, v) {
        if (ngx_strcmp(key, "domain") != 0) {
            json_decref(body);
            n = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                  "unknown field; the only field is domain");
            ngx_http_finalize_request(r, n);
            return;
        }
    }

    domain = json_object_get(body, "domain");

    if (!json_is_string(domain)) {
        json_decref(body);
        n = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_domain",
                              "domain: a string is needed");
        ngx_http_finalize_request(r, n);
        return;
    }

    len = json_string_length(domain);
    out = ngx_pnalloc(r->pool, len + 1);
    if (out == NULL) {
        json_decref(body);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_dr_validate_domain((u_char *) json_string_value(domain), len,
                                out, &d.len);
    json_decref(body);

    if (rc != NGX_DR_VALID_OK) {
        n = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_domain",
                              "domain: %s", ngx_dr_validate_reason(rc));
        ngx_http_finalize_request(r, n);
        return;
    }

    out[d.len] = '\0';
    params[0] = (const char *) out;

    n = ngx_dr_http_query(r, 0, 0, ngx_dr_probe_sql, 1, params,
                         ngx_dr_probe_loaded);

    ngx_http_finalize_request(r, n);
}


static ngx_int_t
ngx_dr_probe_loaded(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    int                   i, n;
    char                 *text;
    ngx_str_t            *rid;
    ngx_pool_cleanup_t   *cln;
    ngx_dr_probe_t       *probe;
    ngx_dr_provider_t    *pr;
    ngx_dr_main_conf_t   *dmcf;
    ngx_dr_probe_job_t   *job;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    n = PQntuples(q->res);

    if (n == 0) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "unknown domain, or no active model and "
                                 "prompt");
    }

    probe = ngx_pcalloc(r->pool, sizeof(ngx_dr_probe_t));
    if (probe == NULL
        || ngx_array_init(&probe->jobs, r->pool, n,
                          sizeof(ngx_dr_probe_job_t))
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    probe->request = r;
    probe->domain.len = PQgetlength(q->res, 0, 0);
    probe->domain.data = ngx_pnalloc(r->pool, probe->domain.len);
    if (probe->domain.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(probe->domain.data, PQgetvalue(q->res, 0, 0),
               probe->domain.len);

    for (i = 0; i < n; i++) {
        pr = ngx_dr_llm_find(dmcf->providers,
                             (u_char *) PQgetvalue(q->res, i, 3),
                             PQgetlength(q->res, i, 3));

        if (pr == NULL
            || !ngx_dr_llm_has_model(pr, (u_char *) PQgetvalue(q->res, i, 4),
                                     PQgetlength(q->res, i, 4)))
        {
            /* a model of the database no provider here serves */
            continue;
        }

        job = ngx_array_push(&probe->jobs);
        if (job == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memzero(job, sizeof(ngx_dr_probe_job_t));
        job->probe = probe;
        job->provider = pr;
        job->model_index = ngx_dr_llm_has_model(pr,
                               (u_char *) PQgetvalue(q->res, i, 4),
                               PQgetlength(q->res, i, 4)) - 1;
        job->model.len = PQgetlength(q->res, i, 4);
        job->prompt.len = PQgetlength(q->res, i, 1);
        text = ngx_pnalloc(r->pool, job->model.len + job->prompt.len
                                    + PQgetlength(q->res, i, 2) + 3);
        if (text == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        job->model.data = (u_char *) text;
        text = (char *) ngx_cpymem(text, PQgetvalue(q->res, i, 4),
                                   job->model.len);
        *text++ = '\0';
        job->prompt.data = (u_char *) text;
        text = (char *) ngx_cpymem(text, PQgetvalue(q->res, i, 1),
                                   job->prompt.len);
        *text++ = '\0';
        job->text = text;
        (void) ngx_cpystrn((u_char *) text,
                           (u_char *) PQgetvalue(q->res, i, 2),
                           PQgetlength(q->res, i, 2) + 1);

        job->price_in = strtod(PQgetvalue(q->res, i, 5), NULL);
        job->price_out = strtod(PQgetvalue(q->res, i, 6), NULL);

        job->pool = r->pool;
        job->log = r->connection->log;
        job->trace_id = probe->trace_id;
        job->max_attempts = NGX_DR_PROBE_ATTEMPTS;
        job->done = ngx_dr_probe_job_done;

        job->wait.handler = ngx_dr_probe_wait;
        job->wait.data = job;
        job->wait.log = r->connection->log;
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

    for (i = 0; rid && i < (int) probe->jobs.nelts; i++) {
        job[i].request_id = *rid;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_dr_probe_cleanup;
    cln->data = probe;

    probe->pending = probe->jobs.nelts;
    job = probe->jobs.elts;

    for (i = 0; i < (int) probe->jobs.nelts; i++) {
        ngx_dr_probe_attempt(&job[i]);
    }

    /* the request lives on until every call has its outcome */
    r->main->count++;

    return NGX_DONE;
}


/*
 * One attempt: a token of the provider key's bucket first (or a wait for
 * it), a free slot of the provider's concurrency, then the call.
 */

static void
ngx_dr_probe_attempt(ngx_dr_probe_job_t *job)
{
    u_char                     *p;
    ngx_str_t                   bucket, tbucket, *keys;
    ngx_uint_t                  k, i, tokens, reserve, best;
    ngx_msec_t                  least;
    ngx_dr_tier_t               tier, ttier;
    ngx_dr_provider_t          *pr;
    ngx_dr_main_conf_t         *dmcf;
    ngx_dr_limit_result_t       res;
    ngx_dr_provider_request_t   req;
    u_char                      name[128], tname[128], span[8];
    u_char                      span_hex[17];
    char                        header[160];

    pr = job->provider;
    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);

    if (pr->active >= pr->concurrency) {
        ngx_add_timer(&job->wait, 20);
        return;
    }

    if (!ngx_dr_breaker_allow(pr)) {
        job->paid = 0;
        ngx_dr_counters_call(ngx_dr_provider_index(pr), job->model_index,
                            NGX_DR_M_CALL_BREAKER, 0, 0, 0, 0);
        (void) ngx_cpystrn((u_char *) job->answer.error,
                           (u_char *) "the provider's circuit breaker is "
                           "open after repeated failures",
                           sizeof(job->answer.error));
        job->answer.kind = NGX_DR_ANSWER_FAIL;
        ngx_dr_probe_finish(job);
        return;
    }

    keys = pr->keys.elts;

    if (job->paid) {
        /* the tokens it took ahead have come */
        job->paid = 0;
        k = job->key - keys;
        goto call;
    }

    /*
     * A token budget is charged what the providers count when a call
     * arrives: the prompt's tokens (at most one per 4 bytes) and the
     * longest answer asked for.
     */

    ngx_dr_provider_tiers(pr, &tier, &ttier);

    tokens = (ngx_strlen(job->text) + 3) / 4 + NGX_DR_PROBE_MAX_TOKENS;

    if (pr->tpm && tokens > ttier.burst) {
        /* it could never be charged in full: none is sent */
        (void) ngx_snprintf((u_char *) job->answer.error,
                            sizeof(job->answer.error),
                            "the call counts %ui tokens, more than the "
                            "%ui its key's token budget holds at once: "
                            "raise tpm%Z", tokens, ttier.burst);
        job->answer.kind = NGX_DR_ANSWER_FAIL;
        ngx_dr_probe_finish(job);
        return;
    }

    k = pr->next_key++ % pr->keys.nelts;
    best = k;
    least = NGX_MAX_INT32_VALUE;
    ngx_memzero(&res, sizeof(ngx_dr_limit_result_t));

    /*
     * A key that has its tokens now; else the one whose tokens come first
     * is charged ahead and the call waits for them, behind the calls
     * that asked before it in any worker.
     */

    for (reserve = 0; reserve < 2 && !res.passed; reserve++) {

        for (i = 0; i < pr->keys.nelts; i++, k = (k + 1) % pr->keys.nelts) {
            if (reserve) {
                k = best;
            }

            p = ngx_snprintf(name, sizeof(name), "p:%V:%ui", &pr->name, k);
            bucket.data = name;
            bucket.len = p - name;

            p = ngx_snprintf(tname, sizeof(tname), "t:%V:%ui", &pr->name,
                             k);
            tbucket.data = tname;
            tbucket.len = p - tname;

            if (dmcf->limit.shm_zone == NULL) {
                res.passed = 1;
                break;
            }

            if (ngx_dr_limit_take_call(&dmcf->limit, &bucket, &tier,
                                       pr->tpm ? &tbucket : NULL, &ttier,
                                       tokens, reserve, &res)
                != NGX_OK)
            {
                res.passed = 0;
                res.retry_ms = 100;
            }

            if (res.passed || reserve) {
                break;
            }

            if (res.retry_ms < least) {
                least = res.retry_ms;
                best = k;
            }
        }

        if (least > NGX_DR_PROBE_TIMEOUT) {
            /* too many wait already: try again later, charged nothing */
            break;
        }
    }

    if (!res.passed) {
        ngx_add_timer(&job->wait, ngx_max(ngx_min(res.retry_ms, 1000), 1));
        return;
    }

    if (res.retry_ms) {
        job->paid = 1;
        job->key = &keys[k];
        ngx_add_timer(&job->wait, res.retry_ms);
        return;
    }

call:

    job->attempts++;
    job->key = &keys[k];

    if (ngx_dr_provider_build(pr->format, (char *) job->model.data,
                              job->text, (char *) keys[k].data,
                              NGX_DR_PROBE_MAX_TOKENS, 0.2, &req)
        != 0)
    {
        job->status = 0;
        (void) ngx_cpystrn((u_char *) job->answer.error,
                           (u_char *) "the request could not be built",
                           sizeof(job->answer.error));
        job->answer.kind = NGX_DR_ANSWER_FAIL;
        ngx_dr_probe_finish(job);
        return;
    }

    ngx_memzero(&job->call, sizeof(ngx_dr_llm_call_t));

    job->call.pool = job->pool;
    job->call.log = job->log;
    job->call.timeout = NGX_DR_PROBE_TIMEOUT;
    job->call.max_response = NGX_DR_PROBE_MAX_ANSWER;
    job->call.done = ngx_dr_probe_answered;
    job->call.data = job;

    p = ngx_pnalloc(job->pool, pr->base.len + ngx_strlen(req.path) + 1);
    if (p) {
        *ngx_cpymem(ngx_cpymem(p, pr->base.data, pr->base.len), req.path,
                    ngx_strlen(req.path)) = '\0';
    }

    job->call.url = (char *) p;
    job->call.body = (char *) ngx_pstrdup(job->pool,
                         &(ngx_str_t) { req.body_len, (u_char *) req.body });
    job->call.body_len = req.body_len;

    for (i = 0; i < (ngx_uint_t) req.nheaders; i++) {
        job->call.headers = curl_slist_append(job->call.headers,
                                              req.headers[i]);
    }

    /*
     * One API request can be followed through every call it made: its
     * request id, and the W3C trace context of the client, with a new
     * span for each call.
     */

    if (RAND_bytes(span, sizeof(span)) == 1) {
        *ngx_hex_dump(span_hex, span, sizeof(span)) = '\0';
        (void) ngx_snprintf((u_char *) header, sizeof(header),
                            "traceparent: 00-%s-%s-01%Z",
                            job->trace_id, span_hex);
        job->call.headers = curl_slist_append(job->call.headers, header);
    }

    if (job->request_id.len) {
        (void) ngx_snprintf((u_char *) header, sizeof(header),
                            "X-Request-Id: %V%Z", &job->request_id);
        job->call.headers = curl_slist_append(job->call.headers, header);
    }

    ngx_dr_provider_request_free(&req);

    if (p == NULL || job->call.body == NULL
        || ngx_dr_llm_start(&job->call) != NGX_OK)
    {
        if (job->call.headers) {
            curl_slist_free_all(job->call.headers);
            job->call.headers = NULL;
        }

        (void) ngx_cpystrn((u_char *) job->answer.error,
                           (u_char *) "the call could not be started",
                           sizeof(job->answer.error));
        job->answer.kind = NGX_DR_ANSWER_FAIL;
        ngx_dr_probe_finish(job);
        return;
    }

    job->calling = 1;
    pr->active++;
}


static void
ngx_dr_probe_wait(ngx_event_t *ev)
{
    ngx_dr_probe_attempt(ev->data);
}


static void
ngx_dr_probe_answered(ngx_dr_llm_call_t *call)
{
    long                      delay;
    ngx_uint_t                outcome;
    ngx_dr_probe_job_t       *job;
    ngx_dr_answer_headers_t   h;

    job = call->data;
    job->calling = 0;
    job->provider->active--;

    if (job->parsed) {
        ngx_dr_provider_answer_free(&job->answer);
        job->parsed = 0;
    }

    ngx_memzero(&h, sizeof(ngx_dr_answer_headers_t));
    h.retry_after = call->retry_after[0] ? (char *) call->retry_after : NULL;
    h.now_s = ngx_time();

    (void) ngx_dr_provider_parse(job->provider->format,
                                 call->status ? call->status : -1,
                                 call->status ? (char *) call->response.data
                                              : call->error,
                                 call->status ? call->response.len
                                              : ngx_strlen(call->error),
                                 NGX_DR_PROBE_MAX_ANSWER, &h, &job->answer);

    job->parsed = 1;
    job->status = call->status;
    job->latency = call->latency;
    job->simulated = call->simulated;

    outcome = (job->answer.kind == NGX_DR_ANSWER_OK) ? NGX_DR_M_CALL_OK
              : (call->status == 429) ? NGX_DR_M_CALL_429
              : (call->status >= 500) ? NGX_DR_M_CALL_5XX
              : (call->status >= 400) ? NGX_DR_M_CALL_4XX
              : (call->status == 0
                 && call->result == CURLE_OPERATION_TIMEDOUT)
                ? NGX_DR_M_CALL_TIMEOUT
              : (call->status == 0) ? NGX_DR_M_CALL_ERROR
              : NGX_DR_M_CALL_BAD;

    ngx_dr_counters_call(ngx_dr_provider_index(job->provider),
                        job->model_index, outcome, call->latency,
                        job->answer.input_tokens,
                        job->answer.output_tokens,
                        ngx_dr_provider_cost_micro(job->answer.input_tokens,
                                                   job->answer.output_tokens,
                                                   job->price_in,
                                                   job->price_out));

    /* a provider that cannot answer, not one that limits or refuses */
    ngx_dr_breaker_result(job->provider,
                          !(outcome == NGX_DR_M_CALL_5XX
                            || outcome == NGX_DR_M_CALL_TIMEOUT
                            || outcome == NGX_DR_M_CALL_ERROR),
                          call->log);

    /* a provider's error may quote the key it refused */
    ngx_dr_provider_scrub_key(job->answer.error, (char *) job->key->data);

    if (job->answer.retryable && job->attempts < job->max_attempts) {
        delay = ngx_dr_provider_backoff_ms(job->attempts, 1000, 60000,
                                           job->answer.retry_after_ms,
                                           (unsigned) ngx_random() << 1
                                           ^ (unsigned) ngx_random());

        ngx_log_error(NGX_LOG_INFO, call->log, 0,
                      "probe: %V %s attempt %ui: %s; again in %l ms",
                      &job->provider->name, job->model.data, job->attempts,
                      job->answer.error, delay);

        ngx_add_timer(&job->wait, (ngx_msec_t) ngx_max(delay, 1));
        return;
    }

    ngx_dr_probe_finish(job);
}


static void
ngx_dr_probe_finish(ngx_dr_probe_job_t *job)
{
    job->finished = 1;
    job->done(job);
}


static void
ngx_dr_probe_job_done(ngx_dr_probe_job_t *job)
{
    ngx_dr_probe_t  *probe;

    probe = job->probe;

    if (--probe->pending == 0) {
        ngx_dr_probe_respond(probe);
    }
}


/* every call has its outcome: the answers, scored */

static void
ngx_dr_probe_respond(ngx_dr_probe_t *probe)
{
    char                   name[160];
    json_t                *answers, *a, *scores, *body;
    ngx_int_t              rc;
    ngx_uint_t             i, simulated;
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_dr_probe_job_t    *job;
    ngx_dr_score_input_t   in;
    ngx_dr_score_result_t  res;
    ngx_dr_score_answer_t *sa;

    r = probe->request;
    c = r->connection;
    job = probe->jobs.elts;

    answers = json_array();
    sa = ngx_pcalloc(r->pool, probe->jobs.nelts
                              * sizeof(ngx_dr_score_answer_t));
    simulated = 0;

    for (i = 0; i < probe->jobs.nelts; i++) {
        (void) ngx_snprintf((u_char *) name, sizeof(name), "%V/%s%Z",
                            &job[i].provider->name, job[i].model.data);

        a = json_pack("{s:o, s:s, s:s, s:s, s:I, s:i, s:I, s:b}",
                      "provider", ngx_dr_json_str(&job[i].provider->name),
                      "model", (char *) job[i].model.data,
                      "prompt", (char *) job[i].prompt.data,
                      "status", job[i].answer.kind == NGX_DR_ANSWER_OK
                                ? "ok" : "failed",
                      "http_status", (json_int_t) job[i].status,
                      "attempts", (int) job[i].attempts,
                      "latency_ms", (json_int_t) job[i].latency,
                      "simulated", job[i].simulated);

        if (a) {
            if (job[i].answer.kind == NGX_DR_ANSWER_OK) {
                json_object_set_new(a, "text",
                                    json_stringn(job[i].answer.text,
                                                 job[i].answer.text_len));
                json_object_set_new(a, "finish_reason",
                    json_string(job[i].answer.finish_reason));
                json_object_set_new(a, "input_tokens",
                    job[i].answer.input_tokens >= 0
                    ? json_integer(job[i].answer.input_tokens)
                    : json_null());
                json_object_set_new(a, "output_tokens",
                    job[i].answer.output_tokens >= 0
                    ? json_integer(job[i].answer.output_tokens)
                    : json_null());

            } else {
                json_object_set_new(a, "error",
                                    json_string(job[i].answer.error));
            }

            json_array_append_new(answers, a);
        }

        simulated |= job[i].simulated;

        if (sa) {
            sa[i].model = (char *) ngx_pstrdup(r->pool,
                &(ngx_str_t) { ngx_strlen(name) + 1, (u_char *) name });
            sa[i].prompt = (char *) job[i].prompt.data;
            sa[i].http_status = job[i].answer.kind == NGX_DR_ANSWER_OK
                                ? 200 : (int) job[i].status;
            sa[i].text = job[i].answer.kind == NGX_DR_ANSWER_OK
                         ? job[i].answer.text : "";
            sa[i].text_len = job[i].answer.kind == NGX_DR_ANSWER_OK
                             ? job[i].answer.text_len : 0;
        }
    }

    scores = NULL;

    if (sa) {
        ngx_memzero(&in, sizeof(ngx_dr_score_input_t));
        in.domain = (char *) ngx_dr_cstr(r->pool, &probe->domain);
        in.answers = sa;
        in.n_answers = probe->jobs.nelts;
        in.expected = probe->jobs.nelts;

        ngx_memzero(&res, sizeof(ngx_dr_score_result_t));

        if (in.domain && ngx_dr_score_domain(&in, &res) == 0) {
            scores = json_pack("{s:f, s:f, s:f, s:i, s:i, s:i, s:i, s:s,"
                               " s:f}",
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
    }

    body = json_pack("{s:o, s:b, s:o, s:o}",
                     "domain", ngx_dr_json_str(&probe->domain),
                     "simulated", (int) simulated,
                     "answers", answers,
                     "scores", scores ? scores : json_null());

    rc = ngx_dr_json_send(r, NGX_HTTP_OK, body);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the request went away (or is done): nothing may wait on it */

static void
ngx_dr_probe_cleanup(void *data)
{
    ngx_dr_probe_t  *probe = data;

    ngx_uint_t           i;
    ngx_dr_probe_job_t  *job;

    job = probe->jobs.elts;

    for (i = 0; i < probe->jobs.nelts; i++) {
        if (job[i].wait.timer_set) {
            ngx_del_timer(&job[i].wait);
        }

        if (job[i].calling) {
            /* the call's own cleanup cancels the transfer */
            job[i].provider->active--;
            job[i].calling = 0;
        }

        if (job[i].parsed) {
            ngx_dr_provider_answer_free(&job[i].answer);
            job[i].parsed = 0;
        }
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


static ngx_uint_t
ngx_dr_provider_index(ngx_dr_provider_t *pr)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);

    return pr - (ngx_dr_provider_t *) dmcf->providers->elts;
}


/*
 * The buckets of a provider's keys: a burst of a fiftieth of the minute's
 * allowance, refilled at the rest, so that no rolling minute ever holds
 * more than the provider allows and a steady crawl gets 98% of it; the
 * token budget's holds at least one call.
 */

static void
ngx_dr_provider_tiers(ngx_dr_provider_t *pr, ngx_dr_tier_t *tier,
    ngx_dr_tier_t *ttier)
{
    ngx_memzero(tier, sizeof(ngx_dr_tier_t));
    tier->burst = ngx_max(pr->rpm / 50, 1);
    tier->rate = (pr->rpm > tier->burst) ? pr->rpm - tier->burst : 1;
    tier->period = 60000;

    ngx_memzero(ttier, sizeof(ngx_dr_tier_t));

    if (pr->tpm) {
        ttier->burst = ngx_max(pr->tpm / 50, NGX_DR_LLM_TPM_BURST);
        ttier->rate = pr->tpm - ttier->burst;
        ttier->period = 60000;
    }
}


/*
 * GET /admin/providers: each provider as configured, its keys masked to
 * their last 4 characters (none shown of a key shorter than 16), what
 * each key's buckets hold now, and the state of its circuit breaker.
 */

ngx_int_t
ngx_dr_providers_handler(ngx_http_request_t *r)
{
    u_char               *p, name[128];
    json_t               *list, *o, *keys, *models, *breaker;
    time_t                opened, left;
    ngx_int_t             n;
    ngx_str_t             bucket, *key, *model;
    ngx_uint_t            i, k, state, failures;
    ngx_dr_tier_t         tier, ttier;
    ngx_dr_provider_t    *pr;
    ngx_dr_counters_t    *m;
    ngx_dr_main_conf_t   *dmcf;
    char                  masked[16];

    static const char  *states[] = { "closed", "open", "half_open" };

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dr_module);
    m = ngx_dr_counters;

    list = json_array();
    if (list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pr = dmcf->providers ? dmcf->providers->elts : NULL;
    n = dmcf->providers ? (ngx_int_t) dmcf->providers->nelts : 0;

    for (i = 0; i < (ngx_uint_t) n; i++) {
        ngx_dr_provider_tiers(&pr[i], &tier, &ttier);

        models = json_array();
        keys = json_array();
        model = pr[i].models.elts;
        key = pr[i].keys.elts;

        for (k = 0; models && k < pr[i].models.nelts; k++) {
            json_array_append_new(models,
                json_stringn((char *) model[k].data, model[k].len));
        }

        for (k = 0; keys && k < pr[i].keys.nelts; k++) {
            if (key[k].len >= 16) {
                (void) ngx_snprintf((u_char *) masked, sizeof(masked),
                                    "****%*s%Z", (size_t) 4,
                                    key[k].data + key[k].len - 4);
            } else {
                (void) ngx_cpystrn((u_char *) masked, (u_char *) "****",
                                   sizeof(masked));
            }

            o = json_pack("{s:s, s:o, s:o}", "key", masked,
                          "requests_available", json_null(),
                          "tokens_available", json_null());

            if (o && dmcf->limit.shm_zone) {
                p = ngx_snprintf(name, sizeof(name), "p:%V:%ui",
                                 &pr[i].name, k);
                bucket.data = name;
                bucket.len = p - name;

                /* a bucket not made yet is full */
                json_object_set_new(o, "requests_available", json_integer(
                    ngx_dr_limit_or(ngx_dr_limit_tokens(&dmcf->limit,
                                                        &bucket),
                                    tier.burst)));

                if (pr[i].tpm) {
                    name[0] = 't';
                    json_object_set_new(o, "tokens_available", json_integer(
                        ngx_dr_limit_or(ngx_dr_limit_tokens(&dmcf->limit,
                                                            &bucket),
                                        ttier.burst)));
                }
            }

            json_array_append_new(keys, o);
        }

        state = NGX_DR_BREAKER_CLOSED;
        failures = 0;
        opened = 0;

        if (m && i < NGX_DR_M_PROVIDERS) {
            state = m->breaker[i];
            failures = m->breaker_failures[i];
            opened = (time_t) m->breaker_opened[i];
        }

        left = 0;

        if (state == NGX_DR_BREAKER_OPEN) {
            left = opened + NGX_DR_BREAKER_OPEN_S - ngx_time();
            left = ngx_max(left, 0);
        }

        breaker = json_pack("{s:s, s:I, s:I}",
                            "state", states[state > 2 ? 0 : state],
                            "failures_in_a_row", (json_int_t) failures,
                            "half_open_in_seconds", (json_int_t) left);

        o = json_pack("{s:s#, s:s, s:o, s:o, s:I, s:o, s:I, s:o, s:o}",
                      "name", pr[i].name.data, (int) pr[i].name.len,
                      "format", ngx_dr_provider_format_name(pr[i].format),
                      "base", ngx_dr_providers_base(&pr[i].base),
                      "models", models ? models : json_null(),
                      "rpm", (json_int_t) pr[i].rpm,
                      "tpm", pr[i].tpm ? json_integer(pr[i].tpm)
                                       : json_null(),
                      "concurrency", (json_int_t) pr[i].concurrency,
                      "keys", keys ? keys : json_null(),
                      "breaker", breaker ? breaker : json_null());

        json_array_append_new(list, o);
    }

    return ngx_dr_json_send(r, NGX_HTTP_OK,
                            json_pack("{s:o}", "providers", list));
}


static ngx_int_t
ngx_dr_limit_or(ngx_int_t tokens, ngx_uint_t full)
{
    return (tokens < 0) ? (ngx_int_t) full : tokens;
}


/* a base URL with any user information in it hidden */

static json_t *
ngx_dr_providers_base(ngx_str_t *base)
{
    u_char  *host, *at, *end, *p;
    json_t  *v;

    host = ngx_strlcasestrn(base->data, base->data + base->len,
                            (u_char *) "://", 3 - 1);
    host = host ? host + 3 : base->data;

    end = host;
    while (end < base->data + base->len && *end != '/') {
        end++;
    }

    at = NULL;
    for (p = host; p < end; p++) {
        if (*p == '@') {
            at = p;
        }
    }

    if (at == NULL) {
        return json_stringn((char *) base->data, base->len);
    }

    p = ngx_alloc(base->len + 8, ngx_cycle->log);
    if (p == NULL) {
        return json_null();
    }

    end = ngx_cpymem(p, base->data, host - base->data);
    end = ngx_cpymem(end, "****", 4);
    end = ngx_cpymem(end, at, base->data + base->len - at);

    v = json_stringn((char *) p, end - p);
    ngx_free(p);

    return v;
}


/*
 * The circuit breaker of a provider, in the shared counters: closed, open
 * after NGX_DR_BREAKER_FAILURES failures in a row (nothing is sent for
 * NGX_DR_BREAKER_OPEN_S), then half-open: one call goes, and its outcome
 * closes or opens the breaker again.
 */

static ngx_uint_t
ngx_dr_breaker_allow(ngx_dr_provider_t *pr)
{
    ngx_uint_t          i;
    ngx_dr_counters_t  *m;

    m = ngx_dr_counters;
    i = ngx_dr_provider_index(pr);

    if (m == NULL || i >= NGX_DR_M_PROVIDERS) {
        return 1;
    }

    switch (m->breaker[i]) {

    case NGX_DR_BREAKER_CLOSED:
        return 1;

    case NGX_DR_BREAKER_OPEN:
        if (ngx_time() - (time_t) m->breaker_opened[i]
            < NGX_DR_BREAKER_OPEN_S)
        {
            return 0;
        }

        /* the one probing call */
        return ngx_atomic_cmp_set(&m->breaker[i], NGX_DR_BREAKER_OPEN,
                                  NGX_DR_BREAKER_HALF_OPEN);

    default:
        return 0;
    }
}


static void
ngx_dr_breaker_result(ngx_dr_provider_t *pr, ngx_uint_t ok, ngx_log_t *log)
{
    ngx_uint_t          i;
    ngx_atomic_uint_t   failures;
    ngx_dr_counters_t  *m;
    ngx_dr_main_conf_t  *dmcf;

    m = ngx_dr_counters;

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);
    i = pr - (ngx_dr_provider_t *) dmcf->providers->elts;

    if (m == NULL || i >= NGX_DR_M_PROVIDERS) {
        return;
    }

    if (ok) {
        m->breaker_failures[i] = 0;

        if (m->breaker[i] != NGX_DR_BREAKER_CLOSED) {
            m->breaker[i] = NGX_DR_BREAKER_CLOSED;
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "provider %V answers again: breaker closed",
                          &pr->name);
        }

        return;
    }

    failures = ngx_atomic_fetch_add(&m->breaker_failures[i], 1) + 1;

    if (m->breaker[i] == NGX_DR_BREAKER_HALF_OPEN
        || (m->breaker[i] == NGX_DR_BREAKER_CLOSED
            && failures >= NGX_DR_BREAKER_FAILURES))
    {
        m->breaker_opened[i] = ngx_time();
        m->breaker[i] = NGX_DR_BREAKER_OPEN;

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "provider %V failed %uA times in a row: breaker "
                      "open for %d s", &pr->name, failures,
                      NGX_DR_BREAKER_OPEN_S);
    }
}


/*
 * The queue's workers.  Every worker of every node claims due jobs in
 * batches (FOR UPDATE SKIP LOCKED, under a lease, dr_runner_lease: a job
 * whose worker died returns to the queue when its lease expires), calls
 * the provider, and ends each job in one statement that stores the answer
 * (unique per run, domain, model and prompt: a job done twice stores
 * once) and marks the job done; a failed attempt is put back with
 * exponential backoff and jitter, or dead after its last attempt, with
 * its error kept.
 */


#define NGX_DR_RUNNER_POLL       500
#define NGX_DR_RUNNER_REAP       1000
/* a job's end is not sent later than this before its lease ends */
#define NGX_DR_RUNNER_MARGIN     1000


static void ngx_dr_runner_poll(ngx_event_t *ev);
static void ngx_dr_runner_claimed(ngx_dr_pg_query_t *q);
static void ngx_dr_runner_job_done(ngx_dr_probe_job_t *job);
static void ngx_dr_runner_stored(ngx_dr_pg_query_t *q);
static void ngx_dr_runner_store(ngx_event_t *ev);
static u_char *ngx_dr_runner_refused(ngx_pool_t *pool, ngx_str_t *error);
static void ngx_dr_runner_again(ngx_msec_t delay);
static void ngx_dr_runner_reap(ngx_event_t *ev);
static void ngx_dr_runner_reaped(ngx_dr_pg_query_t *q);


typedef struct {
    ngx_dr_probe_job_t        job;
    u_char                    id[NGX_INT64_LEN + 1];
    u_char                    run_id[NGX_INT64_LEN + 1];
    u_char                    domain_id[NGX_INT64_LEN + 1];
    u_char                    model_id[NGX_INT64_LEN + 1];
    u_char                    prompt_id[NGX_INT64_LEN + 1];
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
} ngx_dr_queued_t;


static void ngx_dr_runner_end(ngx_dr_queued_t *qj);
static void ngx_dr_runner_send_end(ngx_dr_queued_t *qj, const char *sql,
    int nparams);
static void ngx_dr_runner_send_failure(ngx_dr_queued_t *qj, char *delay,
    ngx_uint_t retryable, char *error);


static ngx_event_t   ngx_dr_runner_event;
static ngx_event_t   ngx_dr_runner_reaper;
static ngx_uint_t    ngx_dr_runner_busy;
static ngx_uint_t   *ngx_dr_runner_provider_busy;
static ngx_uint_t    ngx_dr_runner_claiming;
static ngx_uint_t    ngx_dr_runner_turn;
static u_char        ngx_dr_runner_owner[128];
static u_char        ngx_dr_runner_lease[NGX_INT_T_LEN + 1];


static const char  ngx_dr_runner_claim_sql[] =
    "WITH c AS ("
    " SELECT x.id FROM unnest($4::text[], $2::int[]) AS q(provider, n)"
    " CROSS JOIN LATERAL ("
    "  SELECT j.id FROM jobs j"
    "  WHERE j.model_id IN (SELECT id FROM models"
    "                       WHERE provider = q.provider)"
    "   AND j.status IN ('queued', 'failed') AND j.not_before <= now()"
    "  ORDER BY j.not_before, j.id LIMIT q.n"
    "  FOR UPDATE OF j SKIP LOCKED) x),"
    " u AS ("
    " UPDATE jobs j SET status = 'leased', lease_owner = $1,"
    "  lease_expires = now() + $3::int * interval '1 millisecond',"
    "  attempts = j.attempts + 1, updated_at = now()"
    " FROM c WHERE j.id = c.id"
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
    " WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM jobs"
    "  WHERE run_id = runs.id AND status IN ('queued', 'leased', 'failed'))"
    " ) "
    "SELECT u.id, u.run_id, u.domain_id, u.model_id, u.prompt_id,"
    " u.attempts, u.max_attempts, m.provider, m.model,"
    " replace(p.template, '{domain}', d.domain),"
    " m.input_price_mtok, m.output_price_mtok "
    "FROM u JOIN domains d ON d.id = u.domain_id"
    " JOIN models m ON m.id = u.model_id"
    " JOIN prompts p ON p.id = u.prompt_id";

/*
 * Jobs whose lease expired (their worker was killed, their node lost, or
 * their end could not be stored) go back to the queue, for any worker's
 * next claim.  Every worker asks every second; the jobs it finds locked
 * are ending at that moment.
 */
static const char  ngx_dr_runner_reap_sql[] =
    "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL,"
    " not_before = now(), updated_at = now(),"
    /* a job that outlived twice its attempts' leases kills its workers */
    " status = CASE WHEN attempts >= 2 * max_attempts THEN 'dead'"
    "  ELSE 'queued' END,"
    " last_error = CASE WHEN attempts >= 2 * max_attempts"
    "  THEN 'its lease expired ' || attempts || ' times'"
    "  ELSE last_error END "
    "WHERE id IN (SELECT id FROM jobs"
    " WHERE status = 'leased' AND lease_expires < now()"
    " FOR UPDATE SKIP LOCKED)";

static const char  ngx_dr_runner_done_sql[] =
    "WITH ins AS ("
    " INSERT INTO responses (job_id, run_id, domain_id, model_id,"
    "  prompt_id, prompt_text, answer, finish_reason, http_status,"
    "  input_tokens, output_tokens, cost, latency_ms, simulated)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
    "  $12::numeric / 1000000, $13, $14)"
    " ON CONFLICT (run_id, domain_id, model_id, prompt_id) DO NOTHING"
    " RETURNING 1),"
    " upd AS ("
    " UPDATE jobs SET status = 'done', lease_owner = NULL,"
    "  lease_expires = NULL, last_error = NULL, updated_at = now()"
    " WHERE id = $1 AND status = 'leased' AND lease_owner = $15"
    " RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM upd), (SELECT count(*) FROM jobs"
    " WHERE run_id = $2 AND domain_id = $3 AND id <> $1"
    "  AND status IN ('queued', 'failed'))";

static const char  ngx_dr_runner_failed_sql[] =
    "WITH upd AS ("
    " UPDATE jobs SET"
    "  status = CASE WHEN attempts >= max_attempts OR NOT $4::bool"
    "   THEN 'dead' ELSE 'failed' END,"
    "  not_before = now() + $3::int * interval '1 millisecond',"
    "  last_error = $5, lease_owner = NULL, lease_expires = NULL,"
    "  updated_at = now()"
    " WHERE id = $1 AND status = 'leased' AND lease_owner = $2"
    " RETURNING run_id, domain_id, status) "
    "SELECT upd.status = 'dead', (SELECT count(*) FROM jobs j"
    " WHERE j.run_id = upd.run_id AND j.domain_id = upd.domain_id"
    "  AND j.id <> $1 AND j.status IN ('queued', 'failed')) "
    "FROM upd";


ngx_int_t
ngx_dr_runner_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || dmcf->providers == NULL || !ngx_dr_pg_configured()
        || !dmcf->runner)
    {
        return NGX_OK;
    }

    (void) ngx_snprintf(ngx_dr_runner_owner, sizeof(ngx_dr_runner_owner),
                        "%V/%P%Z", &cycle->hostname, ngx_pid);
    (void) ngx_snprintf(ngx_dr_runner_lease, sizeof(ngx_dr_runner_lease),
                        "%M%Z", dmcf->runner_lease);

    ngx_dr_runner_provider_busy = ngx_pcalloc(cycle->pool,
                                  dmcf->providers->nelts * sizeof(ngx_uint_t));
    if (ngx_dr_runner_provider_busy == NULL) {
        return NGX_ERROR;
    }

    ngx_dr_runner_event.handler = ngx_dr_runner_poll;
    ngx_dr_runner_event.log = cycle->log;
    ngx_dr_runner_event.cancelable = 1;

    ngx_dr_runner_reaper.handler = ngx_dr_runner_reap;
    ngx_dr_runner_reaper.log = cycle->log;
    ngx_dr_runner_reaper.cancelable = 1;

    /* the workers of a node do not all ask at the same moment */
    ngx_add_timer(&ngx_dr_runner_event,
                  NGX_DR_RUNNER_POLL + ngx_random() % NGX_DR_RUNNER_POLL);
    ngx_add_timer(&ngx_dr_runner_reaper,
                  NGX_DR_RUNNER_REAP + ngx_random() % NGX_DR_RUNNER_REAP);

    return NGX_OK;
}


static void
ngx_dr_runner_reap(ngx_event_t *ev)
{
    if (!ngx_exiting
        && ngx_dr_pg_background(ev->log, ngx_dr_runner_reap_sql,
                                ngx_dr_runner_reaped, NULL)
           != NGX_OK)
    {
        ngx_add_timer(ev, NGX_DR_RUNNER_REAP);
    }
}


static void
ngx_dr_runner_reaped(ngx_dr_pg_query_t *q)
{
    char  *n;

    if (q->rc == NGX_DR_PG_OK) {
        n = PQcmdTuples(q->res);

        if (n[0] != '\0' && ngx_strcmp(n, "0") != 0) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "%s jobs whose lease expired are queued again", n);
            ngx_dr_runner_again(0);
        }
    }

    ngx_destroy_pool(q->pool);

    if (!ngx_exiting) {
        ngx_add_timer(&ngx_dr_runner_reaper, NGX_DR_RUNNER_REAP / 2
                                             + ngx_random()
                                               % NGX_DR_RUNNER_REAP);
    }
}


static void
ngx_dr_runner_again(ngx_msec_t delay)
{
    if (ngx_exiting || ngx_dr_runner_claiming
        || ngx_dr_runner_event.log == NULL)
    {
        return;
    }

    if (ngx_dr_runner_event.timer_set) {
        if (delay >= NGX_DR_RUNNER_POLL) {
            return;
        }

        ngx_del_timer(&ngx_dr_runner_event);
    }

    ngx_add_timer(&ngx_dr_runner_event, delay);
}


/*
 * A worker claims of each provider only what its share of the provider's
 * keys can call within half a lease: a job claimed sooner than its token
 * comes would outlive its lease and be asked twice.
 */

static void
ngx_dr_runner_poll(ngx_event_t *ev)
{
    u_char               *p, *names, *counts, *pn, *pc;
    size_t                len;
    ngx_uint_t            i, k, want, cap, n, asked, workers, left, share;
    ngx_uint_t            g, *room, *give;
    ngx_pool_t           *pool;
    ngx_core_conf_t      *ccf;
    ngx_dr_provider_t    *pr;
    ngx_dr_main_conf_t   *dmcf;
    const char           *params[4];

    if (ngx_exiting) {
        /* a job leased and not done returns when its lease expires */
        return;
    }

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);
    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);
    workers = ccf->worker_processes > 0 ? ccf->worker_processes : 1;

    want = (ngx_dr_runner_busy < dmcf->runner_jobs)
           ? dmcf->runner_jobs - ngx_dr_runner_busy : 0;

    pool = ngx_create_pool(1024, ev->log);
    if (pool == NULL) {
        ngx_add_timer(ev, NGX_DR_RUNNER_POLL);
        return;
    }

    pr = dmcf->providers->elts;
    n = dmcf->providers->nelts;

    len = 3;

    for (i = 0; i < n; i++) {
        len += pr[i].name.len + 3;
    }

    names = ngx_pnalloc(pool, len);
    counts = ngx_pnalloc(pool, n * (NGX_INT_T_LEN + 1) + 3);
    p = ngx_pnalloc(pool, NGX_INT_T_LEN + 1);

    if (names == NULL || counts == NULL || p == NULL) {
        ngx_destroy_pool(pool);
        ngx_add_timer(ev, NGX_DR_RUNNER_POLL);
        return;
    }

    room = ngx_pcalloc(pool, 2 * n * sizeof(ngx_uint_t));
    if (room == NULL) {
        ngx_destroy_pool(pool);
        ngx_add_timer(ev, NGX_DR_RUNNER_POLL);
        return;
    }

    give = room + n;
    left = 0;

    for (i = 0; i < n; i++) {
        cap = (uint64_t) pr[i].rpm * pr[i].keys.nelts * dmcf->runner_lease
              / 2 / 60000 / workers;

        if (pr[i].tpm) {
            /* a call of the longest answer and a prompt of 400 bytes */
            cap = ngx_min(cap, (uint64_t) pr[i].tpm * pr[i].keys.nelts
                               * dmcf->runner_lease / 2 / 60000 / workers
                               / (NGX_DR_PROBE_MAX_TOKENS + 100));
        }

        cap = ngx_max(cap, 1);
        cap = ngx_min(cap, pr[i].concurrency);

        room[i] = (ngx_dr_runner_provider_busy[i] < cap)
                  ? cap - ngx_dr_runner_provider_busy[i] : 0;
        left += room[i];
    }

    /*
     * When the providers' room is more than the worker may take, each
     * gets an equal share of it in turn (a provider with little room
     * leaves the rest to the others), so none waits behind the others.
     */

    asked = 0;

    while (asked < want && left > 0) {
        share = ngx_max((want - asked) / n, 1);

        for (k = 0; k < n && asked < want; k++) {
            i = (ngx_dr_runner_turn + k) % n;
            g = ngx_min(ngx_min(room[i] - give[i], share), want - asked);
            give[i] += g;
            asked += g;
            left -= g;
        }
    }

    ngx_dr_runner_turn++;

    pn = ngx_cpymem(names, "{", 1);
    pc = ngx_cpymem(counts, "{", 1);

    for (i = 0; i < n; i++) {
        if (give[i] == 0) {
            continue;
        }

        if (pn != names + 1) {
            *pn++ = ',';
            *pc++ = ',';
        }

        pn = ngx_sprintf(pn, "\"%V\"", &pr[i].name);
        pc = ngx_sprintf(pc, "%ui", give[i]);
    }

    if (asked == 0) {
        ngx_destroy_pool(pool);
        ngx_add_timer(ev, NGX_DR_RUNNER_POLL);
        return;
    }

    *pn++ = '}'; *pn = '\0';
    *pc++ = '}'; *pc = '\0';

    (void) ngx_sprintf(p, "%ui%Z", asked);

    params[0] = (const char *) ngx_dr_runner_owner;
    params[1] = (const char *) counts;
    params[2] = (const char *) ngx_dr_runner_lease;
    params[3] = (const char *) names;

    if (ngx_dr_pg_query(pool, ev->log, 0, 0, ngx_dr_runner_claim_sql, 4,
                        params, ngx_dr_runner_claimed, p)
        == NULL)
    {
        ngx_destroy_pool(pool);
        ngx_add_timer(ev, NGX_DR_RUNNER_POLL);
        return;
    }

    ngx_dr_runner_claiming = 1;
}


static void
ngx_dr_runner_claimed(ngx_dr_pg_query_t *q)
{
    int                   i, n;
    ngx_int_t             asked;
    char                 *v;
    size_t                len;
    ngx_pool_t           *pool;
    ngx_dr_provider_t    *pr;
    ngx_dr_queued_t      *qj;
    ngx_dr_main_conf_t   *dmcf;
    ngx_dr_probe_job_t   *job;

    ngx_dr_runner_claiming = 0;
    n = 0;
    asked = ngx_atoi(q->data, ngx_strlen(q->data));

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);

    if (q->rc == NGX_DR_PG_OK) {
        n = PQntuples(q->res);
    }

    for (i = 0; i < n; i++) {
        pool = ngx_create_pool(4096, q->log);
        if (pool == NULL) {
            break;
        }

        qj = ngx_pcalloc(pool, sizeof(ngx_dr_queued_t));
        if (qj == NULL) {
            ngx_destroy_pool(pool);
            break;
        }

        job = &qj->job;
        job->pool = pool;
        job->log = ngx_cycle->log;
        job->max_attempts = 1;
        job->done = ngx_dr_runner_job_done;
        job->data = qj;

        (void) ngx_cpystrn(qj->id, (u_char *) PQgetvalue(q->res, i, 0),
                           sizeof(qj->id));
        (void) ngx_cpystrn(qj->run_id, (u_char *) PQgetvalue(q->res, i, 1),
                           sizeof(qj->run_id));
        (void) ngx_cpystrn(qj->domain_id, (u_char *) PQgetvalue(q->res, i, 2),
                           sizeof(qj->domain_id));
        (void) ngx_cpystrn(qj->model_id, (u_char *) PQgetvalue(q->res, i, 3),
                           sizeof(qj->model_id));
        (void) ngx_cpystrn(qj->prompt_id, (u_char *) PQgetvalue(q->res, i, 4),
                           sizeof(qj->prompt_id));
        qj->attempt = strtoul(PQgetvalue(q->res, i, 5), NULL, 10);
        qj->max = strtoul(PQgetvalue(q->res, i, 6), NULL, 10);
        qj->lease_end = ngx_current_msec + dmcf->runner_lease;
        qj->store.handler = ngx_dr_runner_store;
        qj->store.data = qj;
        qj->store.log = ngx_cycle->log;
        qj->store.cancelable = 1;

        /* the job id follows the calls, as a request id would */
        job->request_id.data = qj->id;
        job->request_id.len = ngx_strlen(qj->id);

        job->trace_id = ngx_pnalloc(pool, 33);
        if (job->trace_id) {
            (void) ngx_snprintf(job->trace_id, 33, "%032xL%Z",
                                (uint64_t) strtoull((char *) qj->id, NULL,
                                                    10));
        }

        pr = ngx_dr_llm_find(dmcf->providers,
                             (u_char *) PQgetvalue(q->res, i, 7),
                             PQgetlength(q->res, i, 7));

        len = PQgetlength(q->res, i, 8);
        v = ngx_pnalloc(pool, len + 1);
        job->text = (char *) ngx_pstrdup(pool,
            &(ngx_str_t) { PQgetlength(q->res, i, 9) + 1,
                           (u_char *) PQgetvalue(q->res, i, 9) });

        if (v == NULL || job->text == NULL) {
            ngx_destroy_pool(pool);
            break;
        }

        (void) ngx_cpystrn((u_char *) v, (u_char *) PQgetvalue(q->res, i, 8),
                           len + 1);
        job->model.data = (u_char *) v;
        job->model.len = len;
        job->price_in = strtod(PQgetvalue(q->res, i, 10), NULL);
        job->price_out = strtod(PQgetvalue(q->res, i, 11), NULL);

        job->wait.handler = ngx_dr_probe_wait;
        job->wait.data = job;
        job->wait.log = job->log;

        ngx_dr_runner_busy++;
        qj->provider = -1;

        if (pr) {
            qj->provider = pr - (ngx_dr_provider_t *) dmcf->providers->elts;
            ngx_dr_runner_provider_busy[qj->provider]++;
        }

        if (pr == NULL
            || (job->model_index = ngx_dr_llm_has_model(pr, job->model.data,
                                                        len))
               == 0)
        {
            /* another node may serve it: tried again later */
            job->answer.kind = NGX_DR_ANSWER_RETRY;
            job->answer.retryable = 1;
            job->answer.retry_after_ms = 60000;
            (void) ngx_cpystrn((u_char *) job->answer.error,
                               (u_char *) "no provider here serves this "
                               "model", sizeof(job->answer.error));
            ngx_dr_runner_job_done(job);
            continue;
        }

        job->model_index--;
        job->provider = pr;

        ngx_dr_probe_attempt(job);
    }

    ngx_destroy_pool(q->pool);

    /* all that was asked for: there may be more at once */
    ngx_dr_runner_again(n > 0 && n == asked ? 0 : NGX_DR_RUNNER_POLL);
}


static void
ngx_dr_runner_job_done(ngx_dr_probe_job_t *job)
{
    u_char            *p;
    long               delay;
    long long          cost;
    const char       **params;
    ngx_dr_queued_t   *qj;

    qj = job->data;

    p = ngx_pnalloc(job->pool, 6 * NGX_INT64_LEN);
    params = ngx_palloc(job->pool, 15 * sizeof(const char *));

    if (p == NULL || params == NULL) {
        goto failed;
    }

    if (job->answer.kind == NGX_DR_ANSWER_OK) {
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
        p = ngx_sprintf(p, "%l%Z", job->status) ;
        params[9] = job->answer.input_tokens >= 0 ? (char *) p : NULL;
        p = ngx_sprintf(p, "%l%Z", job->answer.input_tokens);
        params[10] = job->answer.output_tokens >= 0 ? (char *) p : NULL;
        p = ngx_sprintf(p, "%l%Z", job->answer.output_tokens);
        params[11] = (char *) p;
        p = ngx_sprintf(p, "%L%Z", cost > 0 ? cost : 0);
        params[12] = (char *) p;
        p = ngx_sprintf(p, "%M%Z", job->latency);
        params[13] = job->simulated ? "true" : "false";
        params[14] = (char *) ngx_dr_runner_owner;

        qj->params = params;
        ngx_dr_runner_send_end(qj, ngx_dr_runner_done_sql, 15);
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

    qj->params = params;
    ngx_dr_runner_send_failure(qj, (char *) p, job->answer.retryable,
                               job->answer.error);
    return;

failed:

    /* the lease expires and the job returns to the queue */
    if (job->parsed) {
        ngx_dr_provider_answer_free(&job->answer);
    }

    ngx_dr_runner_end(qj);
    ngx_destroy_pool(job->pool);
}


/* a job's end: its answer, or its failed attempt and when to try again */

static void
ngx_dr_runner_send_end(ngx_dr_queued_t *qj, const char *sql, int nparams)
{
    qj->sql = sql;
    qj->nparams = nparams;
    qj->store_delay = 0;

    ngx_dr_runner_store(&qj->store);
}


static void
ngx_dr_runner_send_failure(ngx_dr_queued_t *qj, char *delay,
    ngx_uint_t retryable, char *error)
{
    qj->params[0] = (const char *) qj->id;
    qj->params[1] = (const char *) ngx_dr_runner_owner;
    qj->params[2] = delay;
    qj->params[3] = retryable ? "true" : "false";
    qj->params[4] = error;

    ngx_dr_runner_send_end(qj, ngx_dr_runner_failed_sql, 5);
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
    ngx_msec_int_t    left;
    ngx_dr_queued_t  *qj;

    qj = ev->data;

    /*
     * Also while the worker exits: the answer is paid for.  A statement
     * still waiting for a connection when the lease is about to end gives
     * up, since another worker may take the job then.
     */

    left = (ngx_msec_int_t) (qj->lease_end - ngx_current_msec)
           - NGX_DR_RUNNER_MARGIN;

    if (left > 0
        && ngx_dr_pg_query(qj->job.pool, qj->job.log, 0, (ngx_msec_t) left,
                           qj->sql, qj->nparams, qj->params,
                           ngx_dr_runner_stored, &qj->job)
           != NULL)
    {
        return;
    }

    if (qj->job.parsed) {
        ngx_dr_provider_answer_free(&qj->job.answer);
    }

    ngx_dr_runner_end(qj);
    ngx_destroy_pool(qj->job.pool);
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


static void
ngx_dr_runner_stored(ngx_dr_pg_query_t *q)
{
    u_char              *p;
    ngx_msec_int_t       left;
    ngx_dr_queued_t     *qj;
    ngx_dr_probe_job_t  *job;

    job = q->data;
    qj = job->data;

    if (q->rc == NGX_DR_PG_FAILED && qj->sql == ngx_dr_runner_done_sql) {
        /*
         * the database refused the answer itself (a value out of range):
         * asking again would be refused the same way, so the job is dead
         * with the database's reason
         */
        ngx_log_error(NGX_LOG_ERR, job->log, 0,
                      "the answer of job %s was refused by the database: "
                      "%V", qj->id, &q->error);

        p = ngx_dr_runner_refused(job->pool, &q->error);

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
            ngx_log_error(NGX_LOG_INFO, job->log, 0,
                          "the outcome of job %s could not be stored yet "
                          "(%V); trying again in %M ms", qj->id, &q->error,
                          qj->store_delay);
            ngx_add_timer(&qj->store, qj->store_delay);
            return;
        }

        ngx_log_error(NGX_LOG_WARN, job->log, 0,
                      "the outcome of job %s could not be stored; it "
                      "returns to the queue when its lease expires",
                      qj->id);

    } else if (PQntuples(q->res) == 1
               && PQgetvalue(q->res, 0, 0)[0] == 't'
               && ngx_strcmp(PQgetvalue(q->res, 0, 1), "0") == 0)
    {
        /*
         * the job ended and none of its (run, domain) waits to be
         * claimed: the others may still be in flight, which the check
         * after this commit sees
         */
        ngx_dr_scores_check(qj->run_id, qj->domain_id, job->log, NULL,
                            NULL);
    }

    if (job->parsed) {
        ngx_dr_provider_answer_free(&job->answer);
    }

    ngx_dr_runner_end(qj);

    /* the pool q lives in goes with the job */
    ngx_destroy_pool(job->pool);

    ngx_dr_runner_again(0);
}


static void
ngx_dr_runner_end(ngx_dr_queued_t *qj)
{
    ngx_dr_runner_busy--;

    if (qj->provider >= 0) {
        ngx_dr_runner_provider_busy[qj->provider]--;
    }
}



/*
 * The schedule: the first worker of every node asks, at a quarter of the
 * schedule's period (at most every minute), for the run of the current
 * window; the window's unique slot makes one run of it in the cluster
 * whichever node asks first, and no more however often they ask.
 */


static void ngx_dr_schedule_tick(ngx_event_t *ev);
static void ngx_dr_schedule_made(ngx_dr_pg_query_t *q);


static ngx_event_t   ngx_dr_schedule_event;
static u_char        ngx_dr_schedule_period[NGX_TIME_T_LEN + 1];


static const char  ngx_dr_schedule_sql[] =
    "WITH sel AS ("
    " SELECT d.id AS d, m.id AS m, p.id AS p"
    " FROM domains d, models m, prompts p"
    " WHERE d.active AND m.active AND p.active),"
    " r AS ("
    " INSERT INTO runs (kind, status, total_jobs, schedule_slot)"
    " SELECT 'scheduled', 'queued', count(*),"
    "  (floor(extract(epoch FROM now()) / $1::int) * $1::int)::bigint"
    " FROM sel HAVING count(*) > 0"
    " ON CONFLICT (schedule_slot) WHERE kind = 'scheduled' DO NOTHING"
    " RETURNING id),"
    " j AS ("
    " INSERT INTO jobs (run_id, domain_id, model_id, prompt_id)"
    " SELECT r.id, sel.d, sel.m, sel.p FROM r, sel"
    " RETURNING 1) "
    "SELECT r.id, (SELECT count(*) FROM j) FROM r";


ngx_int_t
ngx_dr_schedule_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);

    if (dmcf == NULL || dmcf->schedule == 0 || ngx_worker != 0
        || !ngx_dr_pg_configured())
    {
        return NGX_OK;
    }

    (void) ngx_snprintf(ngx_dr_schedule_period,
                        sizeof(ngx_dr_schedule_period), "%T%Z",
                        dmcf->schedule);

    ngx_dr_schedule_event.handler = ngx_dr_schedule_tick;
    ngx_dr_schedule_event.log = cycle->log;
    ngx_dr_schedule_event.cancelable = 1;

    ngx_add_timer(&ngx_dr_schedule_event, 1000);

    return NGX_OK;
}


static void
ngx_dr_schedule_tick(ngx_event_t *ev)
{
    ngx_pool_t  *pool;
    const char  *params[1];

    if (ngx_exiting) {
        return;
    }

    pool = ngx_create_pool(1024, ev->log);

    params[0] = (const char *) ngx_dr_schedule_period;

    if (pool == NULL
        || ngx_dr_pg_query(pool, ev->log, 0, 0, ngx_dr_schedule_sql, 1,
                           params, ngx_dr_schedule_made, NULL)
           == NULL)
    {
        if (pool) {
            ngx_destroy_pool(pool);
        }

        ngx_dr_schedule_made(NULL);
    }
}


static void
ngx_dr_schedule_made(ngx_dr_pg_query_t *q)
{
    ngx_msec_t           next;
    ngx_dr_main_conf_t  *dmcf;

    if (q) {
        if (q->rc != NGX_DR_PG_OK) {
            ngx_log_error(NGX_LOG_WARN, q->log, 0,
                          "the scheduled run could not be made; "
                          "asking again");

        } else if (PQntuples(q->res) == 1) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "scheduled run %s made with %s jobs",
                          PQgetvalue(q->res, 0, 0),
                          PQgetvalue(q->res, 0, 1));
        }

        ngx_destroy_pool(q->pool);
    }

    if (ngx_exiting) {
        return;
    }

    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);

    next = (ngx_msec_t) dmcf->schedule * 1000 / 4;
    next = ngx_max(next, 250);
    next = ngx_min(next, 60000);

    ngx_add_timer(&ngx_dr_schedule_event, next);
}


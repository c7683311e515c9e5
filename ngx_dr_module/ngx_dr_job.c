
/*
 * Domain Runner: one prompt put to one model, of a probe or of the queue.
 *
 * Each attempt waits for a free place among the provider's calls in this
 * worker, reserves what it could cost in the spend budgets (and is not
 * sent when one has no room), waits for a token of one of its keys'
 * buckets (shared by the workers, so that the provider's limit is never
 * exceeded), is refused while the provider's circuit breaker is open, and
 * is then sent through libcurl; its end settles the reservation to what
 * the call cost.  An answer that another attempt may better (429, 5xx, a
 * timeout, an unusable answer) is asked again with exponential backoff
 * and jitter, 1 s doubling to 60 s, Retry-After honoured, up to the job's
 * attempts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_job.h"
#include "ngx_dr_breaker.h"
#include <openssl/rand.h>


/* a call with no free place among its provider's asks again this soon */
#define NGX_DR_JOB_BUSY_WAIT      20


static void ngx_dr_job_attempt(ngx_dr_job_t *job);
static void ngx_dr_job_wait(ngx_event_t *ev);
static void ngx_dr_job_reserve(ngx_dr_job_t *job);
static void ngx_dr_job_reserved(ngx_dr_budget_hold_t *hold);
static int64_t ngx_dr_job_cost(ngx_dr_job_t *job, ngx_dr_llm_call_t *call);
static ngx_int_t ngx_dr_job_take(ngx_dr_job_t *job);
static ngx_uint_t ngx_dr_job_charge(ngx_dr_job_t *job, ngx_uint_t tokens,
    ngx_dr_llm_tiers_t *tiers, ngx_dr_limit_result_t *res);
static void ngx_dr_job_call(ngx_dr_job_t *job);
static void ngx_dr_job_trace(ngx_dr_job_t *job);
static void ngx_dr_job_header(ngx_dr_job_t *job, const char *fmt, ...);
static void ngx_dr_job_answered(ngx_dr_llm_call_t *call);
static ngx_uint_t ngx_dr_job_outcome(ngx_dr_job_t *job,
    ngx_dr_llm_call_t *call);
static void ngx_dr_job_fail(ngx_dr_job_t *job, const char *fmt, ...);


void
ngx_dr_job_start(ngx_dr_job_t *job)
{
    job->wait.handler = ngx_dr_job_wait;
    job->wait.data = job;
    job->wait.log = job->log;

    ngx_dr_job_attempt(job);
}


void
ngx_dr_job_release(ngx_dr_job_t *job)
{
    if (job->wait.timer_set) {
        ngx_del_timer(&job->wait);
    }

    /* a call cut short may still be billed */
    ngx_dr_budget_release(&job->hold, job->calling);

    if (job->calling) {
        /* the call's own pool cleanup cancels the transfer */
        job->provider->active--;
        job->calling = 0;
    }

    if (job->parsed) {
        ngx_dr_provider_answer_free(&job->answer);
        job->parsed = 0;
    }
}


/*
 * One attempt: a free place among the provider's calls, its reservation
 * in the spend budgets, a closed breaker, a token of a key's bucket (or a
 * wait for it), then the call.
 */

static void
ngx_dr_job_attempt(ngx_dr_job_t *job)
{
    ngx_dr_provider_t  *pr;

    pr = job->provider;

    if (pr->active >= pr->concurrency) {
        ngx_add_timer(&job->wait, NGX_DR_JOB_BUSY_WAIT);
        return;
    }

    if (job->hold.state != NGX_DR_BUDGET_HELD) {
        ngx_dr_job_reserve(job);
        return;
    }

    if (job->paid) {
        /*
         * the tokens it took ahead have come: the breaker let it through
         * before it waited (it may be the half-open breaker's one probing
         * call, which must go, or the breaker stays half-open for ever)
         */
        job->paid = 0;
        job->allowed = 0;
        ngx_dr_job_call(job);
        return;
    }

    /* asked once an attempt: a wait for tokens keeps what it said */

    if (!job->allowed && !ngx_dr_breaker_allow(pr)) {
        ngx_dr_counters_call(pr->index, job->model_index,
                            NGX_DR_M_CALL_BREAKER, 0, 0, 0, 0);
        ngx_dr_job_fail(job, "the provider's circuit breaker is open after "
                        "repeated failures");
        return;
    }

    job->allowed = 1;

    if (ngx_dr_job_take(job) != NGX_OK) {
        return;
    }

    job->allowed = 0;
    ngx_dr_job_call(job);
}


static void
ngx_dr_job_wait(ngx_event_t *ev)
{
    ngx_dr_job_attempt(ev->data);
}


/* what the call could cost, reserved before anything else is taken */

static void
ngx_dr_job_reserve(ngx_dr_job_t *job)
{
    long long  amount;

    amount = ngx_dr_provider_cost_micro(
                 (long) ngx_strlen(job->text) + NGX_DR_JOB_FRAME_TOKENS,
                 NGX_DR_JOB_MAX_TOKENS, job->price_in, job->price_out);

    if (amount < 0) {
        ngx_dr_job_fail(job, "the model's prices (%.4f, %.4f dollars a "
                        "million tokens) cannot be reserved in a budget",
                        job->price_in, job->price_out);
        return;
    }

    job->hold.pool = job->pool;
    job->hold.log = job->log;
    job->hold.provider = &job->provider->name;
    job->hold.run_id = job->run_id;
    job->hold.amount = amount;
    job->hold.done = ngx_dr_job_reserved;
    job->hold.data = job;

    ngx_dr_budget_reserve(&job->hold);
}


static void
ngx_dr_job_reserved(ngx_dr_budget_hold_t *hold)
{
    ngx_dr_job_t  *job;

    job = hold->data;

    if (hold->state == NGX_DR_BUDGET_HELD) {
        ngx_dr_job_attempt(job);
        return;
    }

    /*
     * Not sent, so no attempt of the job is spent: it is asked again
     * after a while, when the budget may have been raised, its period
     * have rolled over, or the database come back.
     */

    job->deferred = 1;
    job->status = 0;
    job->answer.retry_after_ms = NGX_DR_JOB_DEFER
                                 + ngx_random() % NGX_DR_JOB_DEFER;

    ngx_dr_job_fail(job, "%s", hold->error);
}


/*
 * A key's tokens for the call: NGX_OK when it may go now with job->key;
 * otherwise the job waits for its turn, or has failed.
 */

static ngx_int_t
ngx_dr_job_take(ngx_dr_job_t *job)
{
    ngx_str_t              *keys;
    ngx_uint_t              k, tokens;
    ngx_dr_provider_t      *pr;
    ngx_dr_llm_tiers_t      tiers;
    ngx_dr_limit_result_t   res;

    pr = job->provider;
    keys = pr->keys.elts;

    /*
     * A token budget is charged what the providers count when a call
     * arrives: the prompt's tokens (at most one per 4 bytes) and the
     * longest answer asked for.
     */

    ngx_dr_llm_tiers(pr, &tiers);

    tokens = (ngx_strlen(job->text) + 3) / 4 + NGX_DR_JOB_MAX_TOKENS;

    if (pr->tpm && tokens > tiers.tokens.burst) {
        /* it could never be charged in full: none is sent */
        ngx_dr_job_fail(job, "the call counts %ui tokens, more than the %ui "
                        "its key's token budget holds at once: raise tpm",
                        tokens, tiers.tokens.burst);
        return NGX_DECLINED;
    }

    k = ngx_dr_job_charge(job, tokens, &tiers, &res);

    if (!res.passed) {
        ngx_add_timer(&job->wait, ngx_max(ngx_min(res.retry_ms, 1000), 1));
        return NGX_AGAIN;
    }

    job->key = &keys[k];

    if (res.retry_ms) {
        job->paid = 1;
        ngx_add_timer(&job->wait, res.retry_ms);
        return NGX_AGAIN;
    }

    return NGX_OK;
}


/*
 * A key that has its tokens now; else the one whose tokens come first is
 * charged ahead and the call waits for them, behind the calls that asked
 * before it in any worker.  Returns the key charged, if res->passed.
 */

static ngx_uint_t
ngx_dr_job_charge(ngx_dr_job_t *job, ngx_uint_t tokens,
    ngx_dr_llm_tiers_t *tiers, ngx_dr_limit_result_t *res)
{
    ngx_uint_t             k, i, reserve, best;
    ngx_msec_t             least;
    ngx_dr_provider_t     *pr;
    ngx_dr_main_conf_t    *dmcf;
    ngx_dr_llm_buckets_t   b;

    pr = job->provider;
    dmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_dr_module);

    k = pr->next_key++ % pr->keys.nelts;
    best = k;
    least = NGX_MAX_INT32_VALUE;
    ngx_memzero(res, sizeof(ngx_dr_limit_result_t));

    for (reserve = 0; reserve < 2 && !res->passed; reserve++) {

        for (i = 0; i < pr->keys.nelts; i++, k = (k + 1) % pr->keys.nelts) {
            if (reserve) {
                k = best;
            }

            if (dmcf->limit.shm_zone == NULL) {
                res->passed = 1;
                break;
            }

            ngx_dr_llm_buckets(pr, k, &b);

            if (ngx_dr_limit_take_call(&dmcf->limit, &b.calls, &tiers->calls,
                                       pr->tpm ? &b.tokens : NULL,
                                       &tiers->tokens, tokens, reserve, res)
                != NGX_OK)
            {
                res->passed = 0;
                res->retry_ms = 100;
            }

            if (res->passed || reserve) {
                break;
            }

            if (res->retry_ms < least) {
                least = res->retry_ms;
                best = k;
            }
        }

        if (least > NGX_DR_JOB_TIMEOUT) {
            /* too many wait already: try again later, charged nothing */
            break;
        }
    }

    return k;
}


static void
ngx_dr_job_call(ngx_dr_job_t *job)
{
    u_char                     *url;
    ngx_int_t                   i;
    ngx_dr_provider_t          *pr;
    ngx_dr_provider_request_t   req;

    pr = job->provider;
    job->attempts++;

    if (ngx_dr_provider_build(pr->format, (char *) job->model.data,
                              job->text, (char *) job->key->data,
                              NGX_DR_JOB_MAX_TOKENS, 0.2, &req)
        != 0)
    {
        job->status = 0;
        ngx_dr_job_fail(job, "the request could not be built");
        return;
    }

    ngx_memzero(&job->call, sizeof(ngx_dr_llm_call_t));

    job->call.pool = job->pool;
    job->call.log = job->log;
    job->call.timeout = NGX_DR_JOB_TIMEOUT;
    job->call.max_response = NGX_DR_JOB_MAX_ANSWER;
    job->call.done = ngx_dr_job_answered;
    job->call.data = job;

    url = ngx_pnalloc(job->pool, pr->base.len + ngx_strlen(req.path) + 1);
    if (url) {
        *ngx_cpymem(ngx_cpymem(url, pr->base.data, pr->base.len), req.path,
                    ngx_strlen(req.path)) = '\0';
    }

    job->call.url = (char *) url;
    job->call.body = (char *) ngx_pstrdup(job->pool,
                         &(ngx_str_t) { req.body_len, (u_char *) req.body });
    job->call.body_len = req.body_len;

    for (i = 0; i < req.nheaders; i++) {
        job->call.headers = curl_slist_append(job->call.headers,
                                              req.headers[i]);
    }

    ngx_dr_job_trace(job);
    ngx_dr_provider_request_free(&req);

    if (url == NULL || job->call.body == NULL
        || ngx_dr_llm_start(&job->call) != NGX_OK)
    {
        if (job->call.headers) {
            curl_slist_free_all(job->call.headers);
            job->call.headers = NULL;
        }

        ngx_dr_job_fail(job, "the call could not be started");
        return;
    }

    job->calling = 1;
    pr->active++;
}


/*
 * One API request can be followed through every call it made: its
 * request id, and the W3C trace context of the client, with a new span
 * for each call.
 */

static void
ngx_dr_job_trace(ngx_dr_job_t *job)
{
    u_char  span[8];
    u_char  span_hex[17];

    if (RAND_bytes(span, sizeof(span)) == 1) {
        *ngx_hex_dump(span_hex, span, sizeof(span)) = '\0';
        ngx_dr_job_header(job, "traceparent: 00-%s-%s-01", job->trace_id,
                          span_hex);
    }

    if (job->request_id.len) {
        ngx_dr_job_header(job, "X-Request-Id: %V", &job->request_id);
    }
}


/* a header of the call, cut to its buffer if need be */

static void
ngx_dr_job_header(ngx_dr_job_t *job, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    header[160];

    va_start(args, fmt);
    p = ngx_vslprintf(header, header + sizeof(header) - 1, fmt, args);
    va_end(args);

    *p = '\0';

    job->call.headers = curl_slist_append(job->call.headers, (char *) header);
}


static void
ngx_dr_job_answered(ngx_dr_llm_call_t *call)
{
    long                      delay;
    ngx_uint_t                outcome;
    ngx_dr_job_t             *job;
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
                                 NGX_DR_JOB_MAX_ANSWER, &h, &job->answer);

    job->parsed = 1;
    job->status = call->status;
    job->latency = call->latency;
    job->simulated = call->simulated;

    outcome = ngx_dr_job_outcome(job, call);

    ngx_dr_budget_settle(&job->hold, ngx_dr_job_cost(job, call));

    ngx_dr_counters_call(job->provider->index, job->model_index, outcome,
                        call->latency, job->answer.input_tokens,
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

    job->done(job);
}


/*
 * What the call cost, for its budgets: from the tokens the answer counts;
 * without them, an answer (or a call that got none) may still be billed,
 * in full, but a refusal is not.
 */

static int64_t
ngx_dr_job_cost(ngx_dr_job_t *job, ngx_dr_llm_call_t *call)
{
    long long  cost;

    cost = ngx_dr_provider_cost_micro(job->answer.input_tokens,
                                      job->answer.output_tokens,
                                      job->price_in, job->price_out);
    if (cost >= 0) {
        return cost;
    }

    return (call->status == 0 || (call->status >= 200 && call->status < 300))
           ? -1 : 0;
}


/* the call's outcome, as the metrics count it */

static ngx_uint_t
ngx_dr_job_outcome(ngx_dr_job_t *job, ngx_dr_llm_call_t *call)
{
    if (job->answer.kind == NGX_DR_ANSWER_OK) {
        return NGX_DR_M_CALL_OK;
    }

    if (call->status == 429) {
        return NGX_DR_M_CALL_429;
    }

    if (call->status >= 500) {
        return NGX_DR_M_CALL_5XX;
    }

    if (call->status >= 400) {
        return NGX_DR_M_CALL_4XX;
    }

    if (call->status == 0) {
        return (call->result == CURLE_OPERATION_TIMEDOUT)
               ? NGX_DR_M_CALL_TIMEOUT : NGX_DR_M_CALL_ERROR;
    }

    return NGX_DR_M_CALL_BAD;
}


/* the job ends without an answer, for the reason given */

static void
ngx_dr_job_fail(ngx_dr_job_t *job, const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;

    last = (u_char *) job->answer.error + sizeof(job->answer.error) - 1;

    va_start(args, fmt);
    p = ngx_vslprintf((u_char *) job->answer.error, last, fmt, args);
    va_end(args);

    *p = '\0';
    job->answer.kind = NGX_DR_ANSWER_FAIL;
    job->allowed = 0;

    /* the attempt was not sent: what it held is not spent */
    ngx_dr_budget_settle(&job->hold, 0);

    job->done(job);
}

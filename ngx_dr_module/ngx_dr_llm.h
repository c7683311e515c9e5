
/*
 * Domain Runner: HTTPS calls to the LLM providers, through libcurl multi
 * driven by nginx's event loop.
 */


#ifndef _NGX_DR_LLM_H_INCLUDED_
#define _NGX_DR_LLM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <curl/curl.h>

#include "ngx_dr_limit.h"


typedef struct ngx_dr_llm_call_s  ngx_dr_llm_call_t;

typedef void (*ngx_dr_llm_done_pt)(ngx_dr_llm_call_t *call);


struct ngx_dr_llm_call_s {
    /* in */
    ngx_pool_t               *pool;
    ngx_log_t                *log;
    const char               *url;
    struct curl_slist        *headers;     /* freed with the call */
    const char               *body;
    size_t                    body_len;
    ngx_msec_t                timeout;
    size_t                    max_response;
    ngx_dr_llm_done_pt        done;
    void                     *data;

    /* out, valid in done() */
    long                      status;       /* 0: no HTTP answer */
    ngx_str_t                 response;
    u_char                    retry_after[32];
    ngx_msec_t                latency;
    CURLcode                  result;
    char                      error[CURL_ERROR_SIZE];

    /* private */
    CURL                     *easy;
    ngx_event_t               event;        /* posted outcome */
    ngx_msec_t                start;
    size_t                    size;         /* of response.data */
    unsigned                  state:2;
    unsigned                  too_large:1;
    unsigned                  simulated:1;  /* the bundled simulator */
};


/*
 * A token budget is at least 2000 a minute, and its bucket holds at least
 * 1000: a call's prompt and its longest answer
 */
#define NGX_DR_LLM_TPM_MIN        2000
#define NGX_DR_LLM_TPM_BURST      1000


/* a provider declared with dr_provider */
typedef struct {
    ngx_uint_t                index;        /* in the configuration */
    ngx_str_t                 name;
    ngx_uint_t                format;       /* ngx_dr_format_t */
    ngx_str_t                 base;         /* without a final "/" */
    ngx_array_t               models;       /* of ngx_str_t */
    ngx_array_t               keys;         /* of ngx_str_t, NUL ended */
    ngx_uint_t                rpm;          /* per key */
    ngx_uint_t                tpm;          /* per key, 0: no budget */
    ngx_uint_t                concurrency;  /* per worker */
    ngx_uint_t                next_key;
    ngx_uint_t                active;       /* calls in flight here */
} ngx_dr_provider_t;


/* "p:" or "t:", the name, ":", the key's index */
#define NGX_DR_LLM_BUCKET_LEN     128

/* the two buckets of a provider's key, in the limit zone */
typedef struct {
    ngx_str_t                 calls;
    ngx_str_t                 tokens;       /* of its token budget */
    u_char                    calls_name[NGX_DR_LLM_BUCKET_LEN];
    u_char                    tokens_name[NGX_DR_LLM_BUCKET_LEN];
} ngx_dr_llm_buckets_t;

/* what each of them holds at once, and its refill */
typedef struct {
    ngx_dr_tier_t             calls;
    ngx_dr_tier_t             tokens;       /* zero without tpm= */
} ngx_dr_llm_tiers_t;


char *ngx_dr_llm_provider(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_dr_provider_t *ngx_dr_llm_find(ngx_array_t *providers, u_char *name,
    size_t len);
ngx_uint_t ngx_dr_llm_has_model(ngx_dr_provider_t *p, u_char *model,
    size_t len);
void ngx_dr_llm_buckets(ngx_dr_provider_t *pr, ngx_uint_t key,
    ngx_dr_llm_buckets_t *b);
void ngx_dr_llm_tiers(ngx_dr_provider_t *pr, ngx_dr_llm_tiers_t *t);

ngx_int_t ngx_dr_llm_init_process(ngx_cycle_t *cycle);
void ngx_dr_llm_exit_process(ngx_cycle_t *cycle);

ngx_int_t ngx_dr_llm_start(ngx_dr_llm_call_t *call);
void ngx_dr_llm_cancel(ngx_dr_llm_call_t *call);
ngx_uint_t ngx_dr_llm_in_flight(void);


#endif /* _NGX_DR_LLM_H_INCLUDED_ */

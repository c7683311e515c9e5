
/*
 * Domain Runner: the provider codecs (SPEC section 7), shared by the
 * libcurl crawler: building a request in each of the three wire formats,
 * classifying the HTTP answer, cost and backoff arithmetic, masking keys.
 *
 * Pure C99 over libc and jansson: no nginx, no libcurl, no event code,
 * no global mutable state, so unit tests and fuzzers link it directly and
 * any worker may call it.  What is returned is malloc()'d, never from
 * jansson's allocator, so a module that gives jansson nginx pools still
 * frees it with free().
 *
 * The three formats and the base URLs their paths are relative to:
 *
 *   OPENAI     OpenAI https://api.openai.com/v1, DeepSeek
 *              https://api.deepseek.com, Mistral https://api.mistral.ai/v1,
 *              Together https://api.together.xyz/v1, xAI
 *              https://api.x.ai/v1, Perplexity https://api.perplexity.ai;
 *              POST {base}/chat/completions
 *   ANTHROPIC  https://api.anthropic.com; POST {base}/v1/messages
 *   GEMINI     https://generativelanguage.googleapis.com;
 *              POST {base}/v1beta/models/{model}:generateContent
 */


#ifndef _NGX_DR_PROVIDER_H_INCLUDED_
#define _NGX_DR_PROVIDER_H_INCLUDED_


#include <stddef.h>


#define NGX_DR_PROVIDER_MAX_HEADERS     8
#define NGX_DR_PROVIDER_ERROR_LEN       160     /* with the NUL */
#define NGX_DR_PROVIDER_ANTHROPIC_VERSION  "2023-06-01"

/* a run this long of [A-Za-z0-9_-] is taken for a key, and never copied
 * into an error, unless each of its parts between '-' and '_' is plain:
 * at most 3 characters, or all digits, or all one case, or Capitalized
 * ("gpt-4o-mini-2024-07-18" stays, "sk-proj-AbC1..." goes) */
#define NGX_DR_PROVIDER_SECRET_RUN      20

/* Retry-After and friends beyond a day are taken as a day */
#define NGX_DR_PROVIDER_RETRY_MAX_MS    86400000L


typedef enum {
    NGX_DR_FORMAT_OPENAI = 0,
    NGX_DR_FORMAT_ANTHROPIC,
    NGX_DR_FORMAT_GEMINI
} ngx_dr_format_t;


typedef enum {
    NGX_DR_ANSWER_OK = 0,       /* text extracted */
    NGX_DR_ANSWER_RETRY,        /* 408, 409, 429, 5xx (Anthropic 529 too),
                                   no HTTP answer: retry with backoff,
                                   honouring retry_after_ms */
    NGX_DR_ANSWER_FAIL,         /* any other status: do not retry */
    NGX_DR_ANSWER_BAD           /* 2xx but unusable; retryable says
                                   whether another attempt may help */
} ngx_dr_answer_kind_t;


/* everything malloc()'d; release with ngx_dr_provider_request_free() */
typedef struct {
    char                  *path;        /* relative to the base URL */
    char                  *body;        /* JSON, NUL-terminated */
    size_t                 body_len;
    char                  *headers[NGX_DR_PROVIDER_MAX_HEADERS];
    int                    nheaders;    /* "Name: value" each */
} ngx_dr_provider_request_t;


typedef struct {
    ngx_dr_answer_kind_t   kind;

    /* OK only (NULL otherwise): valid UTF-8 without NUL, NUL-terminated;
     * the text parts joined, reasoning and thinking parts left out */
    char                  *text;
    size_t                 text_len;

    /* "stop", "length", "content_filter" or "other" (also when a choice
     * has none) once a choice or candidate was read, "" before */
    char                   finish_reason[32];
    char                   finish_raw[32];  /* as sent, printable ASCII */

    /* the model that answered as the provider names it (OpenAI's dated
     * snapshot, Gemini's modelVersion), printable ASCII, "" if absent */
    char                   model[64];

    /* for any kind; -1 when the usage object is missing or a count is
     * not a number >= 0; Gemini's output counts thoughtsTokenCount too,
     * and a count it leaves out of usageMetadata is 0 (protobuf JSON) */
    long                   input_tokens;
    long                   output_tokens;

    /* from retry-after-ms, Retry-After, Gemini's RetryInfo, then (429
     * only) the rate-limit reset headers; -1 when none says anything */
    long                   retry_after_ms;

    /* one line, printable ASCII, at most 159 bytes, never a key */
    char                   error[NGX_DR_PROVIDER_ERROR_LEN];

    /* another attempt may help: 1 for RETRY, 0 for OK and FAIL, and for
     * BAD 1 unless the answer would come back the same (a content filter,
     * the token limit reached before any text) */
    int                    retryable;
} ngx_dr_answer_t;


/*
 * Response header values the parser can use, each NULL when absent (the
 * first two are in the order { retry_after, now_s } of the first version
 * of this struct, so positional initializers keep working).  For
 * OPENAI the rate-limit ones are x-ratelimit-{remaining,reset}-{requests,
 * tokens} (resets are durations such as "6m0s"), for ANTHROPIC
 * anthropic-ratelimit-{requests,tokens}-{remaining,reset} (resets are
 * RFC 3339 times); GEMINI sends none.  now_s is the caller's clock (Unix
 * seconds) that HTTP-dates and RFC 3339 times are measured against.
 */
typedef struct {
    const char            *retry_after;
    long long              now_s;
    const char            *retry_after_ms;
    const char            *remaining_requests;
    const char            *reset_requests;
    const char            *remaining_tokens;
    const char            *reset_tokens;
} ngx_dr_answer_headers_t;


/* "openai", "anthropic" or "gemini" (ASCII case ignored); 0 or -1 */
int ngx_dr_provider_format(const char *name, ngx_dr_format_t *out);

/* the name ngx_dr_provider_format() takes; "unknown" for a bad value */
const char *ngx_dr_provider_format_name(ngx_dr_format_t f);

/* "ok", "retry", "fail", "bad" */
const char *ngx_dr_provider_kind_name(ngx_dr_answer_kind_t kind);

/*
 * Builds one single-turn request for prompt.  The key goes only into its
 * header (Authorization: Bearer, x-api-key, x-goog-api-key), never into
 * the path or the body; "Content-Type: application/json" is always sent
 * and ANTHROPIC adds "anthropic-version: 2023-06-01".
 *
 * max_tokens must be >= 1.  temperature < 0 leaves it out (the provider's
 * default); otherwise it must be at most 2 (1 for ANTHROPIC).  OPENAI
 * models that refuse max_tokens and any temperature but 1 (o1, o3, o4-*,
 * gpt-5*: names starting "o" and a digit, or "gpt-5") get
 * max_completion_tokens and no temperature.  For GEMINI a "models/"
 * prefix of the model is dropped and the rest percent-encoded into the
 * path.
 *
 * Returns 0, or -1 with *out zeroed for: an empty or non-printable key
 * (a CR or LF would forge a header), an empty model or one with control
 * characters, a prompt that is NULL or not UTF-8, a bad max_tokens or
 * temperature, out of memory.
 */
int ngx_dr_provider_build(ngx_dr_format_t f, const char *model,
    const char *prompt, const char *key, unsigned max_tokens,
    double temperature, ngx_dr_provider_request_t *out);

/* frees and zeroes everything; the header bytes (the key) are wiped */
void ngx_dr_provider_request_free(ngx_dr_provider_request_t *req);

/*
 * Classifies one HTTP answer into *out (always fully set, release with
 * ngx_dr_provider_answer_free() whatever happens).  http_status <= 0
 * means no HTTP answer (connection refused or reset, timeout): RETRY,
 * and then body may hold the transport's own message (curl's error
 * buffer), which goes into error.  max_len 0 means no size limit; a
 * larger body is not parsed at all.  h may be NULL.  body is only read,
 * exactly len bytes, and needs no NUL.
 *
 * The error line, "" for OK, is one of:
 *
 *   HTTP 429 rate_limit_exceeded: Rate limit reached for ...
 *   HTTP 400 INVALID_ARGUMENT/API_KEY_INVALID: API key not valid. ...
 *   HTTP 502 with an HTML page: 502 Bad Gateway
 *   HTTP 504: upstream request timeout          (first line of the text)
 *   HTTP 409 with an empty body
 *   no HTTP response: Operation timed out after 60001 milliseconds ...
 *   200 with a body that is not JSON (line 1, column 39: string or '}'
 *       expected)
 *   200 with truncated JSON (172 bytes)
 *   200 with invalid UTF-8 in the body (line 1, column 124)
 *   200 with a body of 10489856 bytes, over the limit of 10485760
 *   200 with no choices | no content | no candidates | no text
 *   200 with no text: the token limit was reached first (MAX_TOKENS)
 *   200 stopped by a content filter (SAFETY)
 *   200 with the prompt blocked (PROHIBITED_CONTENT)
 *   200 with an error: overloaded_error: Overloaded
 *
 * The code is the provider's error code, else its status or type.  The
 * message is the provider's, folded to one line of printable ASCII (no
 * body excerpt beyond it, an HTML title or a first line of text), with
 * anything that looks like a key replaced by "..." (see
 * NGX_DR_PROVIDER_SECRET_RUN) and cut with "..." at 159 bytes.
 *
 * Returns 0, or -1 when memory ran out (out is then RETRY with an error
 * saying so).
 */
int ngx_dr_provider_parse(ngx_dr_format_t f, long http_status,
    const char *body, size_t len, size_t max_len,
    const ngx_dr_answer_headers_t *h, ngx_dr_answer_t *out);

void ngx_dr_provider_answer_free(ngx_dr_answer_t *a);

/*
 * Micro-dollars for a call: prices are dollars per million tokens, so
 * the cost is tokens x price micro-dollars.  Each price is first made an
 * integer number of micro-dollars per million tokens (rounded to
 * nearest: six decimals of $/Mtok, enough for every published price),
 * then (in x p_in + out x p_out) / 10^6 is computed exactly in 64 bits
 * and rounded to nearest, halves up.  -1 when a token count is negative
 * (usage unknown), a price is negative, NaN or over 10^6, or a count is
 * over 10^12.
 */
long long ngx_dr_provider_cost_micro(long input_tokens, long output_tokens,
    double in_price_mtok, double out_price_mtok);

/*
 * The delay after attempt (1-based) failed: d = min(cap, base x
 * 2^(attempt - 1)) (attempt 0 counts as 1; a cap below base is the cap),
 * then "full jitter", uniform in [0, d] from the 32 low bits of rnd:
 * (d + 1) x rnd / 2^32.  A retry_after_ms above that wins, but never
 * above cap_ms.  Negative base or cap give 0.  rnd needs all 32 bits:
 * random() and ngx_random() give 31, which halves the range, so pass
 * e.g. (unsigned) ngx_random() << 1 ^ (unsigned) ngx_random().
 */
long ngx_dr_provider_backoff_ms(unsigned attempt, long base_ms, long cap_ms,
    long retry_after_ms, unsigned rnd);

/* "****" and the last 4 characters ("****abcd"); just "****" for keys
 * shorter than 8 or NULL, as the simulator labels them; truncated to
 * size - 1 bytes, always NUL-terminated when size > 0 */
void ngx_dr_provider_mask_key(const char *key, char *out, size_t size);

/*
 * For a caller that knows the key: replaces in s, in place, every run of
 * 8 or more bytes (or the whole key, if shorter) that also appears in key
 * with "...".  The parser cannot know the key and scrubs what looks like
 * one (NGX_DR_PROVIDER_SECRET_RUN); this catches the rest.
 */
void ngx_dr_provider_scrub_key(char *s, const char *key);


#endif /* _NGX_DR_PROVIDER_H_INCLUDED_ */

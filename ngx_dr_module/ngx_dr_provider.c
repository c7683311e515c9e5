
/*
 * Domain Runner: the provider codecs (SPEC section 7).
 *
 * Only libc and jansson.  Requests are built as jansson trees and dumped
 * into our own malloc()'d buffer; answers are loaded with jansson and
 * read defensively: every member may be missing, null or of the wrong
 * type, since eight providers and their proxies do not agree on much.
 * Every error string is written through one sanitizer, so that what a
 * provider echoes (HTML, UTF-8, an API key) reaches the logs and the
 * jobs table only as one short line of printable ASCII.
 */


#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_dr_provider.h"


#define NGX_DR_PROVIDER_KEY_MAX      1024
#define NGX_DR_PROVIDER_MODEL_MAX    256

/* the longest provider error code and message kept in an error line */
#define NGX_DR_PROVIDER_CODE_MAX     48
#define NGX_DR_PROVIDER_TITLE_MAX    60
#define NGX_DR_PROVIDER_LINE_MAX     80

/* where an HTML page's title is looked for */
#define NGX_DR_PROVIDER_HTML_SCAN    4096

#define NGX_DR_PROVIDER_TOKENS_MAX   1000000000000LL
#define NGX_DR_PROVIDER_PRICE_MAX    1000000.0

#define ngx_dr_provider_is_space(c)                                          \
    ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n'                 \
     || (c) == '\f' || (c) == '\v')

#define ngx_dr_provider_is_digit(c)  ((c) >= '0' && (c) <= '9')

#define ngx_dr_provider_is_word(c)                                           \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')                \
     || ngx_dr_provider_is_digit(c) || (c) == '_' || (c) == '-')


/* a growing byte buffer for the concatenated text parts */
typedef struct {
    char                  *data;
    size_t                 len;
    size_t                 size;
    int                    nomem;
} ngx_dr_provider_buf_t;


/* a finish reason as a provider spells it, and what it means */
typedef struct {
    const char            *raw;
    const char            *norm;
} ngx_dr_provider_finish_t;


static char *ngx_dr_provider_strdup(const char *s);
static int ngx_dr_provider_ascii_ok(const char *s, size_t max);
static char *ngx_dr_provider_header(const char *name, const char *prefix,
    const char *value);
static char *ngx_dr_provider_gemini_path(const char *model);
static int ngx_dr_provider_openai_reasoning(const char *model);
static json_t *ngx_dr_provider_child(json_t *obj, const char *key,
    json_t *v);
static json_t *ngx_dr_provider_user_message(const char *prompt);
static char *ngx_dr_provider_dump(json_t *root, size_t *len);

static void ngx_dr_provider_err_add(ngx_dr_answer_t *a, const char *s,
    size_t len, size_t max);
static int ngx_dr_provider_secret(const char *s, size_t len);
static void ngx_dr_provider_err_str(ngx_dr_answer_t *a, const char *s);
static void ngx_dr_provider_err_status(ngx_dr_answer_t *a, long status,
    const char *what);
static void ngx_dr_provider_copy(char *dst, size_t size, const char *s);
static void ngx_dr_provider_bad(ngx_dr_answer_t *a, long status,
    int retryable, const char *what);

static json_t *ngx_dr_provider_get(json_t *obj, const char *key);
static const char *ngx_dr_provider_str(json_t *v);
static long ngx_dr_provider_count(json_t *v);
static void ngx_dr_provider_buf_add(ngx_dr_provider_buf_t *b,
    const char *s, size_t n);
static void ngx_dr_provider_buf_text(ngx_dr_provider_buf_t *b, json_t *v);
static const char *ngx_dr_provider_normalize(const char *raw);
static int ngx_dr_provider_utf8_ok(const unsigned char *p, size_t len);

static int ngx_dr_provider_success(ngx_dr_format_t f, long status,
    const char *body, size_t len, size_t max_len, ngx_dr_answer_t *a);
static int ngx_dr_provider_openai(json_t *root, long status,
    ngx_dr_answer_t *a, ngx_dr_provider_buf_t *b);
static int ngx_dr_provider_anthropic(json_t *root, long status,
    ngx_dr_answer_t *a, ngx_dr_provider_buf_t *b);
static int ngx_dr_provider_gemini(json_t *root, long status,
    ngx_dr_answer_t *a, ngx_dr_provider_buf_t *b);
static int ngx_dr_provider_embedded_error(json_t *root, long status,
    ngx_dr_answer_t *a);
static int ngx_dr_provider_finish(ngx_dr_answer_t *a, long status,
    ngx_dr_provider_buf_t *b, const char *raw);

static int ngx_dr_provider_failure(long status, const char *body,
    size_t len, size_t max_len, ngx_dr_answer_t *a, long *delay_ms);
static int ngx_dr_provider_error_doc(json_t *root, ngx_dr_answer_t *a,
    const char **code, long *delay_ms);
static void ngx_dr_provider_not_json(ngx_dr_answer_t *a, const char *body,
    size_t len);
static int ngx_dr_provider_html_title(const char *body, size_t len,
    const char **title, size_t *tlen);

static long ngx_dr_provider_retry_after(ngx_dr_format_t f, long status,
    const ngx_dr_answer_headers_t *h, long body_ms);
static long ngx_dr_provider_clamp_ms(double ms);
static int ngx_dr_provider_number(const char *s, double *v,
    const char **end);
static long ngx_dr_provider_seconds(const char *s);
static long ngx_dr_provider_duration(const char *s);
static long long ngx_dr_provider_days(long long y, unsigned m, unsigned d);
static int ngx_dr_provider_digits(const char **p, unsigned n,
    unsigned *v);
static int ngx_dr_provider_month(const char **p, unsigned *m);
static int ngx_dr_provider_http_date(const char *s, long long *t);
static int ngx_dr_provider_rfc3339(const char *s, long long *t);
static long ngx_dr_provider_until(long long t, long long now_s);


static const char *const  ngx_dr_provider_months[] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};


/*
 * Finish reasons as the providers spell them.  OpenAI-format: stop,
 * length, content_filter, tool_calls, function_call; Together also
 * "eos", Mistral "model_length" (the context ran out).  Anthropic:
 * end_turn, stop_sequence, max_tokens, refusal (Claude 4's classifiers),
 * model_context_window_exceeded, tool_use, pause_turn.  Gemini: STOP,
 * MAX_TOKENS and a family of blocks.  Anything else is "other".
 */

static const ngx_dr_provider_finish_t  ngx_dr_provider_finishes[] = {
    { "stop", "stop" },
    { "eos", "stop" },
    { "end_turn", "stop" },
    { "stop_sequence", "stop" },
    { "STOP", "stop" },
    { "length", "length" },
    { "model_length", "length" },
    { "max_tokens", "length" },
    { "model_context_window_exceeded", "length" },
    { "MAX_TOKENS", "length" },
    { "content_filter", "content_filter" },
    { "refusal", "content_filter" },
    { "SAFETY", "content_filter" },
    { "RECITATION", "content_filter" },
    { "BLOCKLIST", "content_filter" },
    { "PROHIBITED_CONTENT", "content_filter" },
    { "SPII", "content_filter" },
    { "IMAGE_SAFETY", "content_filter" },
    { NULL, NULL }
};


int
ngx_dr_provider_format(const char *name, ngx_dr_format_t *out)
{
    size_t                    i, j;
    static const char *const  names[] = { "openai", "anthropic", "gemini" };

    if (name == NULL || out == NULL) {
        return -1;
    }

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (j = 0; names[i][j] != '\0'; j++) {
            if ((name[j] | 0x20) != names[i][j]) {
                break;
            }
        }

        if (names[i][j] == '\0' && name[j] == '\0') {
            *out = (ngx_dr_format_t) i;
            return 0;
        }
    }

    return -1;
}


const char *
ngx_dr_provider_format_name(ngx_dr_format_t f)
{
    switch (f) {
    case NGX_DR_FORMAT_OPENAI:
        return "openai";
    case NGX_DR_FORMAT_ANTHROPIC:
        return "anthropic";
    case NGX_DR_FORMAT_GEMINI:
        return "gemini";
    }

    return "unknown";
}


const char *
ngx_dr_provider_kind_name(ngx_dr_answer_kind_t kind)
{
    switch (kind) {
    case NGX_DR_ANSWER_OK:
        return "ok";
    case NGX_DR_ANSWER_RETRY:
        return "retry";
    case NGX_DR_ANSWER_FAIL:
        return "fail";
    case NGX_DR_ANSWER_BAD:
        return "bad";
    }

    return "unknown";
}


/* ---------------------------------------------------------------------
 * requests
 */


int
ngx_dr_provider_build(ngx_dr_format_t f, const char *model,
    const char *prompt, const char *key, unsigned max_tokens,
    double temperature, ngx_dr_provider_request_t *out)
{
    int      i, temp, reasoning;
    json_t  *root, *msgs, *gen;

    if (out == NULL) {
        return -1;
    }

    memset(out, 0, sizeof(ngx_dr_provider_request_t));

    if (!ngx_dr_provider_ascii_ok(key, NGX_DR_PROVIDER_KEY_MAX)
        || !ngx_dr_provider_ascii_ok(model, NGX_DR_PROVIDER_MODEL_MAX)
        || prompt == NULL || max_tokens == 0)
    {
        return -1;
    }

    /* NaN fails every comparison, so it lands in the error below */
    temp = !(temperature < 0.0);

    if (temp && !(temperature
                  <= (f == NGX_DR_FORMAT_ANTHROPIC ? 1.0 : 2.0)))
    {
        return -1;
    }

    root = json_object();
    if (root == NULL) {
        return -1;
    }

    /*
     * Each container is attached to root as soon as it exists, so that
     * the one json_decref(root) below releases everything, whatever
     * fails.
     */

    switch (f) {

    case NGX_DR_FORMAT_OPENAI:
        reasoning = ngx_dr_provider_openai_reasoning(model);

        if (json_object_set_new(root, "model", json_string(model)) != 0) {
            goto failed;
        }

        msgs = ngx_dr_provider_child(root, "messages", json_array());

        if (msgs == NULL
            || json_array_append_new(msgs,
                                     ngx_dr_provider_user_message(prompt))
               != 0
            || json_object_set_new(root, reasoning ? "max_completion_tokens"
                                                   : "max_tokens",
                                   json_integer(max_tokens)) != 0
            || (temp && !reasoning
                && json_object_set_new(root, "temperature",
                                       json_real(temperature)) != 0))
        {
            goto failed;
        }

        out->path = ngx_dr_provider_strdup("/chat/completions");
        out->headers[out->nheaders++] =
            ngx_dr_provider_header("Authorization", "Bearer ", key);
        break;

    case NGX_DR_FORMAT_ANTHROPIC:
        if (json_object_set_new(root, "model", json_string(model)) != 0
            || json_object_set_new(root, "max_tokens",
                                   json_integer(max_tokens)) != 0)
        {
            goto failed;
        }

        msgs = ngx_dr_provider_child(root, "messages", json_array());

        if (msgs == NULL
            || json_array_append_new(msgs,
                                     ngx_dr_provider_user_message(prompt))
               != 0
            || (temp && json_object_set_new(root, "temperature",
                                            json_real(temperature)) != 0))
        {
            goto failed;
        }

        out->path = ngx_dr_provider_strdup("/v1/messages");
        out->headers[out->nheaders++] =
            ngx_dr_provider_header("x-api-key", "", key);
        out->headers[out->nheaders++] =
            ngx_dr_provider_header("anthropic-version", "",
                                   NGX_DR_PROVIDER_ANTHROPIC_VERSION);
        break;

    case NGX_DR_FORMAT_GEMINI:
        msgs = ngx_dr_provider_child(root, "contents", json_array());

        if (msgs == NULL
            || json_array_append_new(msgs,
                   json_pack("{s:s, s:[{s:s}]}", "role", "user", "parts",
                             "text", prompt)) != 0)
        {
            goto failed;
        }

        gen = ngx_dr_provider_child(root, "generationConfig", json_object());

        if (gen == NULL
            || json_object_set_new(gen, "maxOutputTokens",
                                   json_integer(max_tokens)) != 0
            || (temp && json_object_set_new(gen, "temperature",
                                            json_real(temperature)) != 0))
        {
            goto failed;
        }

        out->path = ngx_dr_provider_gemini_path(model);
        out->headers[out->nheaders++] =
            ngx_dr_provider_header("x-goog-api-key", "", key);
        break;

    default:
        goto failed;
    }

    out->headers[out->nheaders++] =
        ngx_dr_provider_header("Content-Type", "", "application/json");

    out->body = ngx_dr_provider_dump(root, &out->body_len);

    json_decref(root);

    for (i = 0; i < out->nheaders; i++) {
        if (out->headers[i] == NULL) {
            break;
        }
    }

    if (out->path == NULL || out->body == NULL || i < out->nheaders) {
        ngx_dr_provider_request_free(out);
        return -1;
    }

    return 0;

failed:

    /* json_*_set_new() released a NULL or rejected value already */
    json_decref(root);
    ngx_dr_provider_request_free(out);

    return -1;
}


void
ngx_dr_provider_request_free(ngx_dr_provider_request_t *req)
{
    int                      i;
    size_t                   j, n;
    volatile unsigned char  *p;

    if (req == NULL) {
        return;
    }

    for (i = 0; i < req->nheaders && i < NGX_DR_PROVIDER_MAX_HEADERS; i++) {
        if (req->headers[i] == NULL) {
            continue;
        }

        /* the key should not outlive the request in freed heap memory */
        p = (volatile unsigned char *) req->headers[i];
        n = strlen(req->headers[i]);

        for (j = 0; j < n; j++) {
            p[j] = 0;
        }

        free(req->headers[i]);
    }

    free(req->path);
    free(req->body);

    memset(req, 0, sizeof(ngx_dr_provider_request_t));
}


/* strdup() is POSIX, not C99 */
static char *
ngx_dr_provider_strdup(const char *s)
{
    char    *p;
    size_t   n;

    n = strlen(s) + 1;

    p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }

    return p;
}


/* 1..max bytes of printable ASCII other than space */
static int
ngx_dr_provider_ascii_ok(const char *s, size_t max)
{
    size_t  i;

    if (s == NULL || s[0] == '\0') {
        return 0;
    }

    for (i = 0; s[i] != '\0'; i++) {
        if (i >= max || (unsigned char) s[i] <= 0x20
            || (unsigned char) s[i] >= 0x7f)
        {
            return 0;
        }
    }

    return 1;
}


static char *
ngx_dr_provider_header(const char *name, const char *prefix,
    const char *value)
{
    char    *h;
    size_t   size;

    size = strlen(name) + 2 + strlen(prefix) + strlen(value) + 1;

    h = malloc(size);
    if (h == NULL) {
        return NULL;
    }

    snprintf(h, size, "%s: %s%s", name, prefix, value);

    return h;
}


/* RFC 3986 unreserved characters pass, everything else is %XX */
static char *
ngx_dr_provider_gemini_path(const char *model)
{
    char               *path, *p;
    size_t              i, n;
    unsigned char       c;
    static const char   pre[] = "/v1beta/models/";
    static const char   post[] = ":generateContent";
    static const char   hex[] = "0123456789ABCDEF";

    if (strncmp(model, "models/", 7) == 0 && model[7] != '\0') {
        model += 7;
    }

    n = strlen(model);

    path = malloc(sizeof(pre) - 1 + 3 * n + sizeof(post));
    if (path == NULL) {
        return NULL;
    }

    p = path;
    memcpy(p, pre, sizeof(pre) - 1);
    p += sizeof(pre) - 1;

    for (i = 0; i < n; i++) {
        c = (unsigned char) model[i];

        if (ngx_dr_provider_is_word(c) || c == '.' || c == '~') {
            *p++ = (char) c;
            continue;
        }

        *p++ = '%';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 0x0f];
    }

    memcpy(p, post, sizeof(post));

    return path;
}


/*
 * OpenAI's reasoning models answer 400 to max_tokens ("use
 * max_completion_tokens instead") and to any temperature but the
 * default: o1, o3, o4-mini, gpt-5 and their dated snapshots.
 */

static int
ngx_dr_provider_openai_reasoning(const char *model)
{
    if (model[0] == 'o' && ngx_dr_provider_is_digit(model[1])) {
        return 1;
    }

    return strncmp(model, "gpt-5", 5) == 0;
}


/* v set as obj[key], or NULL (and v released) */
static json_t *
ngx_dr_provider_child(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new(obj, key, v) == 0 ? v : NULL;
}


static json_t *
ngx_dr_provider_user_message(const char *prompt)
{
    /* "s" fails, giving NULL, on a prompt that is not UTF-8 */
    return json_pack("{s:s, s:s}", "role", "user", "content", prompt);
}


/* into a buffer of our own: jansson may have been given another malloc */
static char *
ngx_dr_provider_dump(json_t *root, size_t *len)
{
    char    *buf;
    size_t   n;

    n = json_dumpb(root, NULL, 0, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (n == 0) {
        return NULL;
    }

    buf = malloc(n + 1);
    if (buf == NULL) {
        return NULL;
    }

    if (json_dumpb(root, buf, n, JSON_COMPACT | JSON_REAL_PRECISION(15))
        != n)
    {
        free(buf);
        return NULL;
    }

    buf[n] = '\0';
    *len = n;

    return buf;
}


/* ---------------------------------------------------------------------
 * answers
 */


int
ngx_dr_provider_parse(ngx_dr_format_t f, long http_status,
    const char *body, size_t len, size_t max_len,
    const ngx_dr_answer_headers_t *h, ngx_dr_answer_t *out)
{
    int   rc;
    long  body_ms;

    if (out == NULL) {
        return -1;
    }

    /* BAD until proven otherwise: no path can leave an OK without text */
    memset(out, 0, sizeof(ngx_dr_answer_t));
    out->kind = NGX_DR_ANSWER_BAD;
    out->retryable = 1;
    out->input_tokens = -1;
    out->output_tokens = -1;
    out->retry_after_ms = -1;

    if (body == NULL) {
        len = 0;
    }

    rc = 0;
    body_ms = -1;

    if (http_status <= 0) {
        out->kind = NGX_DR_ANSWER_RETRY;
        out->retryable = 1;
        ngx_dr_provider_err_str(out, "no HTTP response");

        if (len > 0) {
            ngx_dr_provider_err_str(out, ": ");
            ngx_dr_provider_err_add(out, body, len,
                                    NGX_DR_PROVIDER_LINE_MAX);
        }

    } else if (http_status >= 200 && http_status <= 299) {
        rc = ngx_dr_provider_success(f, http_status, body, len, max_len,
                                     out);

    } else {
        rc = ngx_dr_provider_failure(http_status, body, len, max_len, out,
                                     &body_ms);
    }

    if (rc != 0) {
        ngx_dr_provider_answer_free(out);
        out->kind = NGX_DR_ANSWER_RETRY;
        out->retryable = 1;
        out->error[0] = '\0';
        ngx_dr_provider_err_str(out, "out of memory reading the answer");
        return -1;
    }

    out->retry_after_ms = ngx_dr_provider_retry_after(f, http_status, h,
                                                      body_ms);

    len = strlen(out->error);

    while (len > 0 && out->error[len - 1] == ' ') {
        out->error[--len] = '\0';
    }

    return 0;
}


void
ngx_dr_provider_answer_free(ngx_dr_answer_t *a)
{
    if (a == NULL) {
        return;
    }

    free(a->text);
    a->text = NULL;
    a->text_len = 0;
}


/* ---------------------------------------------------------------------
 * the error line: the only way text gets into a->error
 */


/*
 * Appends at most max bytes made from s[0..len): printable ASCII passes,
 * runs of white space and control characters become one space, each
 * non-ASCII character one '?', and a run of NGX_DR_PROVIDER_SECRET_RUN
 * or more [A-Za-z0-9_-] that looks like an API key becomes "...".  The
 * run is measured in s before anything of it is written, so no cut can
 * leave a piece of a key behind.  What does not fit ends in "...".  The
 * line never exceeds 159 bytes.
 */

static void
ngx_dr_provider_err_add(ngx_dr_answer_t *a, const char *s, size_t len,
    size_t max)
{
    int             cut;
    char           *e;
    size_t          i, j, n, room, start, limit;
    unsigned char   c;

    e = a->error;
    n = strlen(e);
    start = n;

    limit = NGX_DR_PROVIDER_ERROR_LEN - 1;

    if (max < limit - n) {
        limit = n + max;
    }

    cut = 0;

    for (i = 0; i < len && !cut; /* void */) {
        c = (unsigned char) s[i];
        room = limit - n;

        if (ngx_dr_provider_is_word(c)) {
            for (j = i; j < len && ngx_dr_provider_is_word(s[j]); j++) {
                /* void */
            }

            if (j - i >= NGX_DR_PROVIDER_SECRET_RUN
                && ngx_dr_provider_secret(s + i, j - i))
            {
                if (room < 3) {
                    cut = 1;
                    break;
                }

                memcpy(e + n, "...", 3);
                n += 3;

            } else if (j - i <= room) {
                memcpy(e + n, s + i, j - i);
                n += j - i;

            } else {
                memcpy(e + n, s + i, room);
                n += room;
                cut = 1;
            }

            i = j;
            continue;
        }

        if (c >= 0x80) {
            /* one '?' per character: skip its continuation bytes */
            for (i++; i < len && ((unsigned char) s[i] & 0xc0) == 0x80;
                 i++)
            {
                /* void */
            }

            c = '?';

        } else if (c <= 0x20 || c == 0x7f) {
            for (i++; i < len && ((unsigned char) s[i] <= 0x20
                                  || (unsigned char) s[i] == 0x7f); i++)
            {
                /* void */
            }

            /* no space at the start of a piece or after another one */
            if (n == 0 || e[n - 1] == ' ') {
                continue;
            }

            c = ' ';

        } else {
            i++;
        }

        if (room == 0) {
            cut = 1;
            break;
        }

        e[n++] = (char) c;
    }

    if (i < len) {
        cut = 1;
    }

    if (cut) {
        /* mark the cut inside what this piece wrote */
        while (n > start && n + 3 > limit) {
            n--;
        }

        if (n + 3 <= limit) {
            memcpy(e + n, "...", 3);
            n += 3;
        }
    }

    e[n] = '\0';
}


/*
 * A key is random: some part of it between '-' and '_' mixes digits and
 * letters or both cases.  The names people give things do not, or only
 * in short parts ("4o", "70B") or Capitalized words, so model names and
 * error codes ("claude-3-5-haiku-20241022", "invalid_request_error")
 * reach the log.  A random part of n base62 characters passes for plain
 * with a probability near 2 x (26/62)^n, below 1e-7 for n = 20 and far
 * less for real keys of 32 to 160 characters; a 32-digit hex key
 * (DeepSeek, Together) is all digits with a probability of 3e-7.
 */

static int
ngx_dr_provider_secret(const char *s, size_t len)
{
    size_t  i, j, n, digits, lower, upper;

    for (i = 0; i < len; i = j + 1) {
        digits = 0;
        lower = 0;
        upper = 0;

        for (j = i; j < len && s[j] != '-' && s[j] != '_'; j++) {
            digits += ngx_dr_provider_is_digit(s[j]);
            lower += (s[j] >= 'a' && s[j] <= 'z');
            upper += (s[j] >= 'A' && s[j] <= 'Z');
        }

        n = j - i;

        if (n <= 3 || digits == n || lower == n || upper == n
            || (upper == 1 && lower == n - 1 && s[i] >= 'A' && s[i] <= 'Z'))
        {
            continue;
        }

        return 1;
    }

    return 0;
}


static void
ngx_dr_provider_err_str(ngx_dr_answer_t *a, const char *s)
{
    ngx_dr_provider_err_add(a, s, strlen(s), NGX_DR_PROVIDER_ERROR_LEN);
}


/* "HTTP 429 " for errors, "200 " for unusable answers */
static void
ngx_dr_provider_err_status(ngx_dr_answer_t *a, long status,
    const char *what)
{
    char  buf[48];

    if (status >= 200 && status <= 299) {
        snprintf(buf, sizeof(buf), "%ld ", status);

    } else {
        snprintf(buf, sizeof(buf), "HTTP %ld", status);
    }

    a->error[0] = '\0';
    ngx_dr_provider_err_str(a, buf);

    if (what != NULL) {
        ngx_dr_provider_err_str(a, what);
    }
}


/* printable ASCII of s, cut to size - 1: finish reasons, model names */
static void
ngx_dr_provider_copy(char *dst, size_t size, const char *s)
{
    size_t  i;

    for (i = 0; s != NULL && s[i] != '\0' && i + 1 < size; i++) {
        dst[i] = ((unsigned char) s[i] > 0x20 && (unsigned char) s[i] < 0x7f)
                 ? s[i] : '?';
    }

    dst[i] = '\0';
}


static void
ngx_dr_provider_bad(ngx_dr_answer_t *a, long status, int retryable,
    const char *what)
{
    a->kind = NGX_DR_ANSWER_BAD;
    a->retryable = retryable;
    ngx_dr_provider_err_status(a, status, what);
}


/* ---------------------------------------------------------------------
 * 2xx answers
 */


static int
ngx_dr_provider_success(ngx_dr_format_t f, long status, const char *body,
    size_t len, size_t max_len, ngx_dr_answer_t *a)
{
    int                     rc;
    char                    buf[96];
    size_t                  i, tlen;
    json_t                 *root;
    const char             *title, *near;
    json_error_t            err;
    ngx_dr_provider_buf_t   b;

    if (max_len > 0 && len > max_len) {
        snprintf(buf, sizeof(buf), "with a body of %lu bytes, over the "
                 "limit of %lu", (unsigned long) len,
                 (unsigned long) max_len);
        ngx_dr_provider_bad(a, status, 1, buf);
        return 0;
    }

    for (i = 0; i < len && ngx_dr_provider_is_space(body[i]); i++) {
        /* void */
    }

    if (i == len) {
        ngx_dr_provider_bad(a, status, 1, "with an empty body");
        return 0;
    }

    if (body[i] == '<') {
        ngx_dr_provider_bad(a, status, 1, "with an HTML page");

        if (ngx_dr_provider_html_title(body, len, &title, &tlen)) {
            ngx_dr_provider_err_str(a, ": ");
            ngx_dr_provider_err_add(a, title, tlen,
                                    NGX_DR_PROVIDER_TITLE_MAX);
        }

        return 0;
    }

    /* JSON_ALLOW_NUL: a "\u0000" in the text is named as such below */
    root = json_loadb(body, len, JSON_ALLOW_NUL, &err);

    if (root == NULL) {
        switch (json_error_code(&err)) {

        case json_error_out_of_memory:
            return -1;

        case json_error_invalid_utf8:
            snprintf(buf, sizeof(buf), "with invalid UTF-8 in the body "
                     "(line %d, column %d)", err.line, err.column);
            ngx_dr_provider_bad(a, status, 1, buf);
            return 0;

        case json_error_premature_end_of_input:
            snprintf(buf, sizeof(buf), "with truncated JSON (%lu bytes)",
                     (unsigned long) len);
            ngx_dr_provider_bad(a, status, 1, buf);
            return 0;

        default:
            break;
        }

        /*
         * jansson's reason without its "near '...'", which quotes the
         * body: the answer text, or worse.
         */

        snprintf(buf, sizeof(buf), "with a body that is not JSON (line %d, "
                 "column %d: ", err.line, err.column);
        ngx_dr_provider_bad(a, status, 1, buf);

        near = strstr(err.text, " near ");
        ngx_dr_provider_err_add(a, err.text,
                                near ? (size_t) (near - err.text)
                                     : strlen(err.text),
                                NGX_DR_PROVIDER_LINE_MAX);
        ngx_dr_provider_err_str(a, ")");

        return 0;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        ngx_dr_provider_bad(a, status, 1, "with JSON that is not an object");
        return 0;
    }

    memset(&b, 0, sizeof(ngx_dr_provider_buf_t));

    switch (f) {
    case NGX_DR_FORMAT_ANTHROPIC:
        rc = ngx_dr_provider_anthropic(root, status, a, &b);
        break;
    case NGX_DR_FORMAT_GEMINI:
        rc = ngx_dr_provider_gemini(root, status, a, &b);
        break;
    default:
        rc = ngx_dr_provider_openai(root, status, a, &b);
        break;
    }

    json_decref(root);

    /* NULL when the text went to a->text */
    free(b.data);

    return rc;
}


/*
 * OpenAI chat completions, and what the OpenAI-format providers add:
 * Perplexity's citations and search_results, DeepSeek's
 * reasoning_content (not the answer), Mistral's content as an array of
 * chunks, a refusal in message.refusal with content null.
 */

static int
ngx_dr_provider_openai(json_t *root, long status, ngx_dr_answer_t *a,
    ngx_dr_provider_buf_t *b)
{
    json_t  *usage, *choices, *c0, *msg, *content;

    ngx_dr_provider_copy(a->model, sizeof(a->model),
        ngx_dr_provider_str(ngx_dr_provider_get(root, "model")));

    usage = ngx_dr_provider_get(root, "usage");

    if (json_is_object(usage)) {
        a->input_tokens = ngx_dr_provider_count(
                              ngx_dr_provider_get(usage, "prompt_tokens"));
        a->output_tokens = ngx_dr_provider_count(
                              ngx_dr_provider_get(usage,
                                                  "completion_tokens"));
    }

    choices = ngx_dr_provider_get(root, "choices");

    if (!json_is_array(choices) || json_array_size(choices) == 0) {
        if (ngx_dr_provider_embedded_error(root, status, a)) {
            return 0;
        }

        ngx_dr_provider_bad(a, status, 1, "with no choices");
        return 0;
    }

    c0 = json_array_get(choices, 0);
    msg = ngx_dr_provider_get(c0, "message");

    if (json_is_object(msg)) {
        content = ngx_dr_provider_get(msg, "content");

        ngx_dr_provider_buf_text(b, content);

        if (b->len == 0 && !b->nomem) {
            ngx_dr_provider_buf_text(b,
                ngx_dr_provider_get(msg, "refusal"));
        }

    } else {
        /* the legacy completions shape some proxies still send */
        ngx_dr_provider_buf_text(b, ngx_dr_provider_get(c0, "text"));
    }

    return ngx_dr_provider_finish(a, status, b,
        ngx_dr_provider_str(ngx_dr_provider_get(c0, "finish_reason")));
}


static int
ngx_dr_provider_anthropic(json_t *root, long status, ngx_dr_answer_t *a,
    ngx_dr_provider_buf_t *b)
{
    size_t       i;
    json_t      *usage, *content, *block;
    const char  *type;

    if (ngx_dr_provider_embedded_error(root, status, a)) {
        return 0;
    }

    ngx_dr_provider_copy(a->model, sizeof(a->model),
        ngx_dr_provider_str(ngx_dr_provider_get(root, "model")));

    /* cache_*_input_tokens are priced apart; we never ask for caching */
    usage = ngx_dr_provider_get(root, "usage");

    if (json_is_object(usage)) {
        a->input_tokens = ngx_dr_provider_count(
                              ngx_dr_provider_get(usage, "input_tokens"));
        a->output_tokens = ngx_dr_provider_count(
                              ngx_dr_provider_get(usage, "output_tokens"));
    }

    content = ngx_dr_provider_get(root, "content");

    if (!json_is_array(content) || json_array_size(content) == 0) {
        /* a refusal may come with no content at all */
        ngx_dr_provider_copy(a->finish_raw, sizeof(a->finish_raw),
            ngx_dr_provider_str(ngx_dr_provider_get(root, "stop_reason")));

        if (strcmp(ngx_dr_provider_normalize(a->finish_raw),
                   "content_filter") == 0)
        {
            return ngx_dr_provider_finish(a, status, b, a->finish_raw);
        }

        a->finish_raw[0] = '\0';
        ngx_dr_provider_bad(a, status, 1, "with no content");
        return 0;
    }

    /* "thinking" and "tool_use" blocks are not the answer */
    for (i = 0; i < json_array_size(content); i++) {
        block = json_array_get(content, i);
        type = ngx_dr_provider_str(ngx_dr_provider_get(block, "type"));

        if (type == NULL || strcmp(type, "text") == 0) {
            ngx_dr_provider_buf_text(b, ngx_dr_provider_get(block, "text"));
        }
    }

    return ngx_dr_provider_finish(a, status, b,
        ngx_dr_provider_str(ngx_dr_provider_get(root, "stop_reason")));
}


/*
 * Gemini generateContent.  usageMetadata is protobuf JSON, which leaves
 * out fields that are zero, so a missing count in a present object is 0;
 * thoughtsTokenCount (2.5 models) is billed as output.  A prompt that
 * was blocked has no candidates but a promptFeedback.blockReason.
 */

static int
ngx_dr_provider_gemini(json_t *root, long status, ngx_dr_answer_t *a,
    ngx_dr_provider_buf_t *b)
{
    long         n, t;
    size_t       i;
    json_t      *usage, *cands, *c0, *parts, *part, *thought;
    const char  *block;

    ngx_dr_provider_copy(a->model, sizeof(a->model),
        ngx_dr_provider_str(ngx_dr_provider_get(root, "modelVersion")));

    usage = ngx_dr_provider_get(root, "usageMetadata");

    if (json_is_object(usage)) {
        n = ngx_dr_provider_count(
                ngx_dr_provider_get(usage, "promptTokenCount"));
        a->input_tokens = n < 0 ? 0 : n;

        n = ngx_dr_provider_count(
                ngx_dr_provider_get(usage, "candidatesTokenCount"));
        t = ngx_dr_provider_count(
                ngx_dr_provider_get(usage, "thoughtsTokenCount"));
        n = n < 0 ? 0 : n;
        t = t < 0 ? 0 : t;
        a->output_tokens = n > LONG_MAX - t ? LONG_MAX : n + t;
    }

    cands = ngx_dr_provider_get(root, "candidates");

    if (!json_is_array(cands) || json_array_size(cands) == 0) {
        if (ngx_dr_provider_embedded_error(root, status, a)) {
            return 0;
        }

        block = ngx_dr_provider_str(ngx_dr_provider_get(
                    ngx_dr_provider_get(root, "promptFeedback"),
                    "blockReason"));

        if (block != NULL) {
            ngx_dr_provider_copy(a->finish_raw, sizeof(a->finish_raw),
                                 block);
            ngx_dr_provider_copy(a->finish_reason,
                                 sizeof(a->finish_reason), "content_filter");
            ngx_dr_provider_bad(a, status, 0, "with the prompt blocked (");
            ngx_dr_provider_err_add(a, block, strlen(block),
                                    NGX_DR_PROVIDER_CODE_MAX);
            ngx_dr_provider_err_str(a, ")");
            return 0;
        }

        ngx_dr_provider_bad(a, status, 1, "with no candidates");
        return 0;
    }

    c0 = json_array_get(cands, 0);
    parts = ngx_dr_provider_get(ngx_dr_provider_get(c0, "content"),
                                "parts");

    for (i = 0; i < json_array_size(parts); i++) {
        part = json_array_get(parts, i);
        thought = ngx_dr_provider_get(part, "thought");

        if (!json_is_true(thought)) {
            ngx_dr_provider_buf_text(b, ngx_dr_provider_get(part, "text"));
        }
    }

    return ngx_dr_provider_finish(a, status, b,
        ngx_dr_provider_str(ngx_dr_provider_get(c0, "finishReason")));
}


/*
 * A 2xx that carries an error document instead of an answer, as some
 * OpenAI-format proxies and gateways send: {"error": {...}} or
 * Anthropic's {"type": "error", ...}.  Worth another attempt.
 */

static int
ngx_dr_provider_embedded_error(json_t *root, long status,
    ngx_dr_answer_t *a)
{
    long         ms;
    const char  *code;
    json_t      *e;

    e = ngx_dr_provider_get(root, "error");

    if (e == NULL || json_is_null(e)) {
        return 0;
    }

    ngx_dr_provider_bad(a, status, 1, "with an error:");

    /* a 2xx is not told when to come back: the body's delay is ignored */
    ms = -1;
    (void) ngx_dr_provider_error_doc(root, a, &code, &ms);

    return 1;
}


static int
ngx_dr_provider_finish(ngx_dr_answer_t *a, long status,
    ngx_dr_provider_buf_t *b, const char *raw)
{
    size_t       i;
    const char  *norm;

    if (b->nomem) {
        free(b->data);
        b->data = NULL;
        return -1;
    }

    ngx_dr_provider_copy(a->finish_raw, sizeof(a->finish_raw), raw);
    norm = raw ? ngx_dr_provider_normalize(raw) : "other";
    ngx_dr_provider_copy(a->finish_reason, sizeof(a->finish_reason), norm);

    /*
     * A filter that stopped the answer stops the next one too, and what
     * it let through is cut where the filter struck: not an answer.
     */

    if (strcmp(norm, "content_filter") == 0) {
        ngx_dr_provider_bad(a, status, 0, "stopped by a content filter (");
        ngx_dr_provider_err_str(a, a->finish_raw);
        ngx_dr_provider_err_str(a, ")");
        return 0;
    }

    for (i = 0; i < b->len; i++) {
        if (!ngx_dr_provider_is_space(b->data[i])) {
            break;
        }
    }

    if (i == b->len) {
        /*
         * The limit was spent before any text, typically on reasoning
         * (Gemini 2.5 thoughts, o-series, deepseek-reasoner): the same
         * request spends it the same way.
         */

        if (strcmp(norm, "length") == 0) {
            ngx_dr_provider_bad(a, status, 0, "with no text: the token "
                                "limit was reached first (");
            ngx_dr_provider_err_str(a, a->finish_raw);
            ngx_dr_provider_err_str(a, ")");
            return 0;
        }

        ngx_dr_provider_bad(a, status, 1, "with no text");
        return 0;
    }

    if (memchr(b->data, '\0', b->len) != NULL) {
        ngx_dr_provider_bad(a, status, 1, "with a NUL character in the text");
        return 0;
    }

    /* jansson checked the body already; this is the contract, kept here */
    if (!ngx_dr_provider_utf8_ok((const unsigned char *) b->data, b->len)) {
        ngx_dr_provider_bad(a, status, 1, "with invalid UTF-8 in the text");
        return 0;
    }

    a->kind = NGX_DR_ANSWER_OK;
    a->retryable = 0;
    a->text = b->data;
    a->text_len = b->len;
    b->data = NULL;

    return 0;
}


static json_t *
ngx_dr_provider_get(json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}


static const char *
ngx_dr_provider_str(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : NULL;
}


/* a token count: a non-negative integer (or integral real), else -1 */
static long
ngx_dr_provider_count(json_t *v)
{
    double     d;
    json_int_t i;

    if (json_is_integer(v)) {
        i = json_integer_value(v);

        if (i < 0) {
            return -1;
        }

        return i > LONG_MAX ? LONG_MAX : (long) i;
    }

    if (json_is_real(v)) {
        d = json_real_value(v);

        if (!(d >= 0.0)) {
            return -1;
        }

        if (d >= (double) LONG_MAX) {
            return LONG_MAX;
        }

        return ((double) (long) d == d) ? (long) d : -1;
    }

    return -1;
}


static void
ngx_dr_provider_buf_add(ngx_dr_provider_buf_t *b, const char *s, size_t n)
{
    char    *p;
    size_t   size;

    if (b->nomem || n == 0) {
        return;
    }

    if (n >= (size_t) -1 - b->len) {
        b->nomem = 1;
        return;
    }

    if (b->len + n + 1 > b->size) {
        size = b->size ? b->size : 256;

        while (size < b->len + n + 1) {
            size = size > (size_t) -1 / 2 ? b->len + n + 1 : size * 2;
        }

        p = realloc(b->data, size);
        if (p == NULL) {
            b->nomem = 1;
            return;
        }

        b->data = p;
        b->size = size;
    }

    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}


/* a string, or an array of parts whose type is absent or "text" */
static void
ngx_dr_provider_buf_text(ngx_dr_provider_buf_t *b, json_t *v)
{
    size_t       i;
    json_t      *part;
    const char  *type;

    if (json_is_string(v)) {
        ngx_dr_provider_buf_add(b, json_string_value(v),
                                json_string_length(v));
        return;
    }

    for (i = 0; i < json_array_size(v); i++) {
        part = json_array_get(v, i);
        type = ngx_dr_provider_str(ngx_dr_provider_get(part, "type"));

        if (type == NULL || strcmp(type, "text") == 0) {
            ngx_dr_provider_buf_text(b, json_is_string(part)
                                        ? part
                                        : ngx_dr_provider_get(part, "text"));
        }
    }
}


static const char *
ngx_dr_provider_normalize(const char *raw)
{
    const ngx_dr_provider_finish_t  *f;

    for (f = ngx_dr_provider_finishes; f->raw != NULL; f++) {
        if (strcmp(f->raw, raw) == 0) {
            return f->norm;
        }
    }

    return "other";
}


/* well-formed UTF-8 by the byte ranges of Unicode table 3-7 */
static int
ngx_dr_provider_utf8_ok(const unsigned char *p, size_t len)
{
    size_t         i, j, n;
    unsigned char  c, lo, hi;

    for (i = 0; i < len; i += n) {
        c = p[i];
        lo = 0x80;
        hi = 0xbf;

        if (c < 0x80) {
            n = 1;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            lo = (c == 0xe0) ? 0xa0 : 0x80;
            hi = (c == 0xed) ? 0x9f : 0xbf;

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            lo = (c == 0xf0) ? 0x90 : 0x80;
            hi = (c == 0xf4) ? 0x8f : 0xbf;

        } else {
            return 0;
        }

        if (n > len - i || p[i + 1] < lo || p[i + 1] > hi) {
            return 0;
        }

        for (j = 2; j < n; j++) {
            if (p[i + j] < 0x80 || p[i + j] > 0xbf) {
                return 0;
            }
        }
    }

    return 1;
}


/* ---------------------------------------------------------------------
 * other statuses
 */


static int
ngx_dr_provider_failure(long status, const char *body, size_t len,
    size_t max_len, ngx_dr_answer_t *a, long *delay_ms)
{
    char          buf[64];
    size_t        i;
    json_t       *root;
    const char   *code;
    json_error_t  err;

    if (status == 408 || status == 409 || status == 429
        || (status >= 500 && status <= 599))
    {
        a->kind = NGX_DR_ANSWER_RETRY;
        a->retryable = 1;

    } else {
        a->kind = NGX_DR_ANSWER_FAIL;
        a->retryable = 0;
    }

    ngx_dr_provider_err_status(a, status, NULL);

    if (max_len > 0 && len > max_len) {
        snprintf(buf, sizeof(buf), " with a body of %lu bytes",
                 (unsigned long) len);
        ngx_dr_provider_err_str(a, buf);
        return 0;
    }

    for (i = 0; i < len && ngx_dr_provider_is_space(body[i]); i++) {
        /* void */
    }

    if (i == len || (body[i] != '{' && body[i] != '[')) {
        ngx_dr_provider_not_json(a, body, len);
        return 0;
    }

    root = json_loadb(body, len, JSON_ALLOW_NUL, &err);

    if (root == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            return -1;
        }

        ngx_dr_provider_not_json(a, body, len);
        return 0;
    }

    code = NULL;

    if (ngx_dr_provider_error_doc(root, a, &code, delay_ms) != 0) {
        ngx_dr_provider_err_str(a, " with JSON that is no error document");
    }

    /*
     * OpenAI says 429 also when the account has no credit left: waiting
     * does not bring money back, so this one is not retried.
     */

    if (status == 429 && code != NULL
        && strcmp(code, "insufficient_quota") == 0)
    {
        a->kind = NGX_DR_ANSWER_FAIL;
        a->retryable = 0;
    }

    json_decref(root);

    return 0;
}


/*
 * Appends " code: message" from any of the error documents seen in the
 * wild, whatever the format (proxies mix them up):
 *
 *   OpenAI     {"error": {"message", "type", "param", "code"}}
 *   Anthropic  {"type": "error", "error": {"type", "message"}}
 *   Gemini     {"error": {"code": 429, "message", "status", "details"}},
 *              sometimes inside an array [{"error": ...}]
 *   Mistral    {"object": "error", "message", "type", "code"} (422)
 *   others     {"error": "message"}, {"detail": "message"},
 *              {"message": "..."}
 *
 * The code is the provider's string code, else its type or status, with
 * Gemini's ErrorInfo reason after a slash.  *delay_ms gets Gemini's
 * RetryInfo retryDelay.  Returns -1 when nothing was found.
 */

static int
ngx_dr_provider_error_doc(json_t *root, ngx_dr_answer_t *a,
    const char **code, long *delay_ms)
{
    char         num[32];
    size_t       i;
    json_t      *e, *c, *details, *d;
    const char  *msg, *reason, *delay;

    *code = NULL;

    if (json_is_array(root)) {
        root = json_array_get(root, 0);
    }

    e = ngx_dr_provider_get(root, "error");

    if (json_is_string(e)) {
        ngx_dr_provider_err_str(a, ": ");
        ngx_dr_provider_err_str(a, json_string_value(e));
        return 0;
    }

    if (!json_is_object(e)) {
        e = root;
    }

    if (!json_is_object(e)) {
        return -1;
    }

    msg = ngx_dr_provider_str(ngx_dr_provider_get(e, "message"));

    if (msg == NULL) {
        msg = ngx_dr_provider_str(ngx_dr_provider_get(e, "detail"));
    }

    c = ngx_dr_provider_get(e, "code");
    *code = ngx_dr_provider_str(c);

    if (*code == NULL && json_is_integer(c) && e != root) {
        /* Gemini's code repeats the status; others' numbers are codes */
        *code = ngx_dr_provider_str(ngx_dr_provider_get(e, "status"));
    }

    if (*code == NULL && json_is_integer(c)) {
        snprintf(num, sizeof(num), "%lld", (long long) json_integer_value(c));
        *code = num;
    }

    if (*code == NULL) {
        *code = ngx_dr_provider_str(ngx_dr_provider_get(e, "status"));
    }

    if (*code == NULL) {
        *code = ngx_dr_provider_str(ngx_dr_provider_get(e, "type"));
    }

    if (*code == NULL && msg == NULL) {
        return -1;
    }

    reason = NULL;
    details = ngx_dr_provider_get(e, "details");

    for (i = 0; i < json_array_size(details); i++) {
        d = json_array_get(details, i);

        if (reason == NULL) {
            reason = ngx_dr_provider_str(ngx_dr_provider_get(d, "reason"));
        }

        delay = ngx_dr_provider_str(ngx_dr_provider_get(d, "retryDelay"));

        if (delay != NULL) {
            *delay_ms = ngx_dr_provider_duration(delay);
        }
    }

    if (*code != NULL) {
        ngx_dr_provider_err_str(a, " ");
        ngx_dr_provider_err_add(a, *code, strlen(*code),
                                NGX_DR_PROVIDER_CODE_MAX);
    }

    if (reason != NULL) {
        ngx_dr_provider_err_str(a, "/");
        ngx_dr_provider_err_add(a, reason, strlen(reason),
                                NGX_DR_PROVIDER_CODE_MAX);
    }

    if (msg != NULL) {
        ngx_dr_provider_err_str(a, ": ");
        ngx_dr_provider_err_str(a, msg);
    }

    /* num is about to go out of scope; only string codes are compared */
    if (*code == num) {
        *code = NULL;
    }

    return 0;
}


/* an HTML page from a proxy or CDN, some text, or nothing */
static void
ngx_dr_provider_not_json(ngx_dr_answer_t *a, const char *body, size_t len)
{
    size_t       i, n;
    const char  *title;

    for (i = 0; i < len && ngx_dr_provider_is_space(body[i]); i++) {
        /* void */
    }

    if (i == len) {
        ngx_dr_provider_err_str(a, " with an empty body");
        return;
    }

    if (body[i] == '<') {
        ngx_dr_provider_err_str(a, " with an HTML page");

        if (ngx_dr_provider_html_title(body, len, &title, &n)) {
            ngx_dr_provider_err_str(a, ": ");
            ngx_dr_provider_err_add(a, title, n, NGX_DR_PROVIDER_TITLE_MAX);
        }

        return;
    }

    for (n = i; n < len && body[n] != '\n' && body[n] != '\r'; n++) {
        /* void */
    }

    ngx_dr_provider_err_str(a, ": ");
    ngx_dr_provider_err_add(a, body + i, n - i, NGX_DR_PROVIDER_LINE_MAX);
}


/* the text of <title>, else of the first <h1>, in the first 4 KB */
static int
ngx_dr_provider_html_title(const char *body, size_t len, const char **title,
    size_t *tlen)
{
    size_t                    i, j, k, n, scan;
    static const char *const  tags[] = { "<title", "<h1" };

    scan = len < NGX_DR_PROVIDER_HTML_SCAN ? len : NGX_DR_PROVIDER_HTML_SCAN;

    for (k = 0; k < 2; k++) {
        n = strlen(tags[k]);

        for (i = 0; i + n <= scan; i++) {
            for (j = 0; j < n; j++) {
                if ((body[i + j] | 0x20) != tags[k][j]) {
                    break;
                }
            }

            if (j < n || (i + n < scan && body[i + n] != '>'
                          && !ngx_dr_provider_is_space(body[i + n])))
            {
                continue;
            }

            for (i += n; i < scan && body[i] != '>'; i++) {
                /* void */
            }

            for (j = ++i; j < scan && body[j] != '<'; j++) {
                /* void */
            }

            /* skip white space: a title of only that is no title */
            while (i < j && ngx_dr_provider_is_space(body[i])) {
                i++;
            }

            if (i >= j) {
                break;
            }

            *title = body + i;
            *tlen = j - i;

            return 1;
        }
    }

    return 0;
}


/* ---------------------------------------------------------------------
 * when to come back
 */


static long
ngx_dr_provider_retry_after(ngx_dr_format_t f, long status,
    const ngx_dr_answer_headers_t *h, long body_ms)
{
    int          i;
    long         ms, best;
    double       v;
    long long    t;
    const char  *remaining, *reset;

    if (h != NULL && h->retry_after_ms != NULL
        && ngx_dr_provider_number(h->retry_after_ms, &v, NULL) == 0)
    {
        return ngx_dr_provider_clamp_ms(v);
    }

    if (h != NULL && h->retry_after != NULL) {
        ms = ngx_dr_provider_seconds(h->retry_after);

        if (ms < 0 && ngx_dr_provider_http_date(h->retry_after, &t) == 0) {
            ms = ngx_dr_provider_until(t, h->now_s);
        }

        if (ms >= 0) {
            return ms;
        }
    }

    if (body_ms >= 0) {
        return body_ms;
    }

    if (status != 429 || h == NULL || f == NGX_DR_FORMAT_GEMINI) {
        return -1;
    }

    /* the reset of whichever limit is exhausted; the later of both */
    best = -1;

    for (i = 0; i < 2; i++) {
        remaining = i ? h->remaining_tokens : h->remaining_requests;
        reset = i ? h->reset_tokens : h->reset_requests;

        if (remaining == NULL || reset == NULL
            || ngx_dr_provider_number(remaining, &v, NULL) != 0
            || v > 0.0)
        {
            continue;
        }

        if (f == NGX_DR_FORMAT_ANTHROPIC) {
            ms = ngx_dr_provider_rfc3339(reset, &t) == 0
                 ? ngx_dr_provider_until(t, h->now_s) : -1;

        } else {
            ms = ngx_dr_provider_duration(reset);
        }

        if (ms > best) {
            best = ms;
        }
    }

    return best;
}


/* rounded up: coming back a little late is better than too early */
static long
ngx_dr_provider_clamp_ms(double ms)
{
    long  r;

    if (!(ms >= 0.0)) {
        return -1;
    }

    if (ms >= (double) NGX_DR_PROVIDER_RETRY_MAX_MS) {
        return NGX_DR_PROVIDER_RETRY_MAX_MS;
    }

    r = (long) ms;

    return (r < ms) ? r + 1 : r;
}


/*
 * A non-negative decimal, digits with an optional fraction, no sign, no
 * exponent, white space around allowed when end is NULL.  With end set,
 * parsing stops after the number and *end points there.
 */

static int
ngx_dr_provider_number(const char *s, double *v, const char **end)
{
    int     digits;
    double  x, scale;

    while (*s == ' ' || *s == '\t') {
        s++;
    }

    x = 0.0;
    digits = 0;

    for ( /* void */ ; ngx_dr_provider_is_digit(*s); s++) {
        x = x * 10.0 + (*s - '0');
        digits++;
    }

    if (*s == '.') {
        scale = 0.1;

        for (s++; ngx_dr_provider_is_digit(*s); s++) {
            x += (*s - '0') * scale;
            scale /= 10.0;
            digits++;
        }
    }

    if (digits == 0) {
        return -1;
    }

    if (end != NULL) {
        *end = s;

    } else {
        while (*s == ' ' || *s == '\t') {
            s++;
        }

        if (*s != '\0') {
            return -1;
        }
    }

    if (v != NULL) {
        *v = x;
    }

    return 0;
}


/* Retry-After delay-seconds, in ms (fractions tolerated), or -1 */
static long
ngx_dr_provider_seconds(const char *s)
{
    double  v;

    if (ngx_dr_provider_number(s, &v, NULL) != 0) {
        return -1;
    }

    return ngx_dr_provider_clamp_ms(v * 1000.0);
}


/*
 * Go-style durations as OpenAI's x-ratelimit-reset-* ("6m0s", "1.5s",
 * "120ms", "1h2m3s") and protobuf durations as Gemini's retryDelay
 * ("27.5s"), in ms, or -1.
 */

static long
ngx_dr_provider_duration(const char *s)
{
    double       v, total, unit;
    const char  *p;

    while (*s == ' ' || *s == '\t') {
        s++;
    }

    if (*s == '\0') {
        return -1;
    }

    total = 0.0;

    while (*s != '\0' && *s != ' ' && *s != '\t') {
        if (ngx_dr_provider_number(s, &v, &p) != 0) {
            return -1;
        }

        s = p;

        if (s[0] == 'm' && s[1] == 's') {
            unit = 1.0;
            s += 2;

        } else if (s[0] == 'u' && s[1] == 's') {
            unit = 0.001;
            s += 2;

        } else if (s[0] == 'n' && s[1] == 's') {
            unit = 0.000001;
            s += 2;

        } else if (s[0] == 'h') {
            unit = 3600000.0;
            s++;

        } else if (s[0] == 'm') {
            unit = 60000.0;
            s++;

        } else if (s[0] == 's') {
            unit = 1000.0;
            s++;

        } else {
            return -1;
        }

        total += v * unit;
    }

    while (*s == ' ' || *s == '\t') {
        s++;
    }

    return *s == '\0' ? ngx_dr_provider_clamp_ms(total) : -1;
}


/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */
static long long
ngx_dr_provider_days(long long y, unsigned m, unsigned d)
{
    long long  era;
    unsigned   yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? (unsigned) -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (long long) doe - 719468;
}


/* exactly n digits (n 0: one or two, for asctime's padded day) */
static int
ngx_dr_provider_digits(const char **p, unsigned n, unsigned *v)
{
    unsigned     i, max;
    const char  *s;

    s = *p;
    *v = 0;
    max = n ? n : 2;

    for (i = 0; i < max && ngx_dr_provider_is_digit(s[i]); i++) {
        *v = *v * 10 + (unsigned) (s[i] - '0');
    }

    if (i == 0 || (n && i != n)) {
        return -1;
    }

    *p = s + i;

    return 0;
}


static int
ngx_dr_provider_month(const char **p, unsigned *m)
{
    unsigned  i;

    for (i = 0; i < 12; i++) {
        if (strncmp(*p, ngx_dr_provider_months[i], 3) == 0) {
            *m = i + 1;
            *p += 3;
            return 0;
        }
    }

    return -1;
}


/*
 * The three HTTP-date forms a recipient must accept (RFC 9110 5.6.7):
 *
 *   Sun, 06 Nov 1994 08:49:37 GMT     IMF-fixdate
 *   Sunday, 06-Nov-94 08:49:37 GMT    RFC 850, two-digit year
 *   Sun Nov  6 08:49:37 1994          asctime
 */

static int
ngx_dr_provider_http_date(const char *s, long long *t)
{
    unsigned     day, mon, year, hh, mm, ss;
    const char  *p;

    p = s;

    while (*p == ' ') {
        p++;
    }

    while ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') {
        p++;
    }

    if (*p == ',') {
        p++;

        if (*p++ != ' ' || ngx_dr_provider_digits(&p, 2, &day) != 0) {
            return -1;
        }

        if (*p == ' ') {
            p++;

            if (ngx_dr_provider_month(&p, &mon) != 0 || *p++ != ' '
                || ngx_dr_provider_digits(&p, 4, &year) != 0)
            {
                return -1;
            }

        } else if (*p == '-') {
            p++;

            if (ngx_dr_provider_month(&p, &mon) != 0 || *p++ != '-'
                || ngx_dr_provider_digits(&p, 2, &year) != 0)
            {
                return -1;
            }

            /* RFC 9110: a year more than 50 years ahead is in the past */
            year += (year < 70) ? 2000 : 1900;

        } else {
            return -1;
        }

        if (*p++ != ' ') {
            return -1;
        }

    } else if (*p == ' ') {
        p++;

        if (ngx_dr_provider_month(&p, &mon) != 0 || *p++ != ' ') {
            return -1;
        }

        if (*p == ' ') {
            p++;
        }

        if (ngx_dr_provider_digits(&p, 0, &day) != 0 || *p++ != ' ') {
            return -1;
        }

        year = 0;

    } else {
        return -1;
    }

    if (ngx_dr_provider_digits(&p, 2, &hh) != 0 || *p++ != ':'
        || ngx_dr_provider_digits(&p, 2, &mm) != 0 || *p++ != ':'
        || ngx_dr_provider_digits(&p, 2, &ss) != 0)
    {
        return -1;
    }

    if (year == 0) {
        if (*p++ != ' ' || ngx_dr_provider_digits(&p, 4, &year) != 0) {
            return -1;
        }

    } else if (strncmp(p, " GMT", 4) != 0) {
        return -1;

    } else {
        p += 4;
    }

    while (*p == ' ') {
        p++;
    }

    if (*p != '\0' || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
    {
        return -1;
    }

    *t = ngx_dr_provider_days(year, mon, day) * 86400
         + hh * 3600 + mm * 60 + ss;

    return 0;
}


/* 2026-11-29T12:44:29Z, with optional fraction and numeric offset */
static int
ngx_dr_provider_rfc3339(const char *s, long long *t)
{
    int          sign;
    unsigned     year, mon, day, hh, mm, ss, oh, om;
    const char  *p;

    p = s;

    while (*p == ' ') {
        p++;
    }

    if (ngx_dr_provider_digits(&p, 4, &year) != 0 || *p++ != '-'
        || ngx_dr_provider_digits(&p, 2, &mon) != 0 || *p++ != '-'
        || ngx_dr_provider_digits(&p, 2, &day) != 0
        || (*p != 'T' && *p != 't' && *p != ' '))
    {
        return -1;
    }

    p++;

    if (ngx_dr_provider_digits(&p, 2, &hh) != 0 || *p++ != ':'
        || ngx_dr_provider_digits(&p, 2, &mm) != 0 || *p++ != ':'
        || ngx_dr_provider_digits(&p, 2, &ss) != 0)
    {
        return -1;
    }

    /* the fraction is dropped: a reset is rounded up to the next second */
    if (*p == '.') {
        for (p++; ngx_dr_provider_is_digit(*p); p++) {
            /* void */
        }

        ss++;
    }

    sign = 0;
    oh = 0;
    om = 0;

    if (*p == 'Z' || *p == 'z') {
        p++;

    } else if (*p == '+' || *p == '-') {
        sign = (*p++ == '-') ? -1 : 1;

        if (ngx_dr_provider_digits(&p, 2, &oh) != 0 || *p++ != ':'
            || ngx_dr_provider_digits(&p, 2, &om) != 0)
        {
            return -1;
        }

    } else {
        return -1;
    }

    while (*p == ' ') {
        p++;
    }

    if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31
        || hh > 23 || mm > 59 || ss > 61 || oh > 23 || om > 59)
    {
        return -1;
    }

    *t = ngx_dr_provider_days(year, mon, day) * 86400
         + hh * 3600 + mm * 60 + ss
         - sign * (long long) (oh * 3600 + om * 60);

    return 0;
}


static long
ngx_dr_provider_until(long long t, long long now_s)
{
    if (t <= now_s) {
        return 0;
    }

    if (t - now_s >= NGX_DR_PROVIDER_RETRY_MAX_MS / 1000) {
        return NGX_DR_PROVIDER_RETRY_MAX_MS;
    }

    return (long) (t - now_s) * 1000;
}


/* ---------------------------------------------------------------------
 * cost, backoff, keys
 */


long long
ngx_dr_provider_cost_micro(long input_tokens, long output_tokens,
    double in_price_mtok, double out_price_mtok)
{
    long long  pin, pout, whole, frac;

    if (input_tokens < 0 || output_tokens < 0
        || input_tokens > NGX_DR_PROVIDER_TOKENS_MAX
        || output_tokens > NGX_DR_PROVIDER_TOKENS_MAX
        || !(in_price_mtok >= 0.0)
        || !(in_price_mtok <= NGX_DR_PROVIDER_PRICE_MAX)
        || !(out_price_mtok >= 0.0)
        || !(out_price_mtok <= NGX_DR_PROVIDER_PRICE_MAX))
    {
        return -1;
    }

    /* micro-dollars per million tokens, exact from here on */
    pin = (long long) (in_price_mtok * 1e6 + 0.5);
    pout = (long long) (out_price_mtok * 1e6 + 0.5);

    /*
     * tokens x price / 10^6 split into whole and fraction of the price,
     * so no product exceeds 10^12 x 10^6 = 10^18 < 2^63
     */

    whole = input_tokens * (pin / 1000000) + output_tokens * (pout / 1000000);
    frac = input_tokens * (pin % 1000000) + output_tokens * (pout % 1000000);

    whole += frac / 1000000;

    if (frac % 1000000 >= 500000) {
        whole++;
    }

    return whole;
}


long
ngx_dr_provider_backoff_ms(unsigned attempt, long base_ms, long cap_ms,
    long retry_after_ms, unsigned rnd)
{
    long                d;
    unsigned            i;
    unsigned long long  n, r;

    if (base_ms < 0 || cap_ms < 0) {
        return 0;
    }

    d = base_ms < cap_ms ? base_ms : cap_ms;

    for (i = 1; i < attempt && d < cap_ms; i++) {
        d = (d > cap_ms / 2) ? cap_ms : d * 2;
    }

    /*
     * floor((d + 1) x r / 2^32), a value in [0, d]; d + 1 is split at
     * 2^32 so that neither product can overflow whatever long is
     */

    n = (unsigned long long) d + 1;
    r = rnd & 0xffffffffU;
    d = (long) ((n >> 32) * r + (((n & 0xffffffffU) * r) >> 32));

    if (retry_after_ms > d) {
        d = retry_after_ms < cap_ms ? retry_after_ms : cap_ms;
    }

    return d;
}


void
ngx_dr_provider_mask_key(const char *key, char *out, size_t size)
{
    size_t  n;

    if (out == NULL || size == 0) {
        return;
    }

    n = key ? strlen(key) : 0;

    snprintf(out, size, "****%s", n >= 8 ? key + n - 4 : "");
}


void
ngx_dr_provider_scrub_key(char *s, const char *key)
{
    size_t  i, j, k, n, klen, best, min;

    if (s == NULL || key == NULL || key[0] == '\0') {
        return;
    }

    klen = strlen(key);
    min = klen < 8 ? klen : 8;
    n = strlen(s);

    for (i = 0; i < n; /* void */) {
        best = 0;

        /* the longest piece of the key that starts at s + i */
        for (j = 0; j < klen; j++) {
            for (k = 0; i + k < n && j + k < klen && s[i + k] == key[j + k];
                 k++)
            {
                /* void */
            }

            if (k > best) {
                best = k;
            }
        }

        if (best < min) {
            i++;
            continue;
        }

        memmove(s + i + 3, s + i + best, n - i - best + 1);
        memcpy(s + i, "...", 3);
        n = n - best + 3;
        i += 3;
    }
}

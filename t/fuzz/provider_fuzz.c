
/*
 * Domain Runner: libFuzzer target for ngx_dr_module/ngx_dr_provider.c.
 *
 * The first three bytes choose the wire format, the HTTP status (from
 * the ones that matter, 0 being "no HTTP answer") and flags: a size
 * limit of half the body, response headers, a request built from the
 * input.  With headers, the rest is split at NUL bytes into the body and
 * the seven header values; else it is all body.  The body is a heap copy
 * of exactly its bytes, not NUL-terminated, so AddressSanitizer catches
 * a read one byte too far.  Beyond not crashing or leaking:
 *
 *   - the kind matches the status class and retryable matches the kind;
 *   - an OK answer has non-empty, NUL-terminated, NUL-free, well-formed
 *     UTF-8 text, a finish reason of the four, and came with a 2xx;
 *     any other has no text;
 *   - the error line is printable ASCII, under 160 bytes, and holds no
 *     run of 20+ [A-Za-z0-9_-] with a part between '-' and '_' that is
 *     not plain (what the header takes for a key);
 *   - model and finish_raw are printable; counts and delays in range;
 *   - parsing the same input again gives the same answer;
 *   - a request built from the input as the prompt is JSON that gives
 *     the prompt back, with the key only in its header.
 *
 * Build and run (the corpus directory is scratch, never committed):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ingx_dr_module \
 *       t/fuzz/provider_fuzz.c ngx_dr_module/ngx_dr_provider.c \
 *       -ljansson -o /tmp/provider_fuzz
 *   mkdir -p /tmp/provider-corpus
 *   /tmp/provider_fuzz -max_total_time=60 /tmp/provider-corpus
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_dr_provider.h"


/* abort() with a message: libFuzzer saves the input that got here */
#define check(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define FUZZ_KEY  "fuzz-FAKE-not-a-key-0001"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *copy(const uint8_t *p, size_t len, int nul);
static int utf8_ok(const unsigned char *p, size_t len);
static int printable(const char *s, size_t size);
static int plain(const char *s, size_t n);
static void check_answer(const ngx_dr_answer_t *a, long status,
    size_t len, size_t max_len);
static void fuzz_build(ngx_dr_format_t f, const uint8_t *p, size_t len);


static const long  statuses[] = {
    200, 200, 200, 200, 201, 204, 0, -1, 400, 401, 403, 404, 408, 409,
    413, 422, 429, 429, 500, 502, 503, 504, 529, 301, 100, 600
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                       i;
    long                      status;
    char                     *body, *hv[7];
    size_t                    len, max_len, start, end, k;
    ngx_dr_format_t           f;
    ngx_dr_answer_t           a, b;
    ngx_dr_answer_headers_t   h, *hp;

    if (size < 3) {
        return 0;
    }

    f = (ngx_dr_format_t) (data[0] % 3);
    status = statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))];

    data += 3;
    size -= 3;

    if (data[-1] & 0x04) {
        fuzz_build(f, data, size);
    }

    memset(hv, 0, sizeof(hv));
    memset(&h, 0, sizeof(h));
    hp = NULL;
    len = size;

    if (data[-1] & 0x02) {
        hp = &h;
        h.now_s = 1795956614LL;

        /* body NUL v1 NUL v2 ... : the values are C strings */
        for (len = 0; len < size && data[len] != '\0'; len++) {
            /* void */
        }

        start = len + 1;

        for (i = 0; i < 7 && start <= size; i++) {
            for (end = start; end < size && data[end] != '\0'; end++) {
                /* void */
            }

            hv[i] = copy(data + start, end - start, 1);
            start = end + 1;
        }

        h.retry_after = hv[0];
        h.retry_after_ms = hv[1];
        h.remaining_requests = hv[2];
        h.reset_requests = hv[3];
        h.remaining_tokens = hv[4];
        h.reset_tokens = hv[5];

        if (hv[6] != NULL) {
            h.now_s = (long long) strtoll(hv[6], NULL, 10);
        }
    }

    max_len = (data[-1] & 0x01) ? len / 2 : 0;

    body = copy(data, len, 0);

    check(ngx_dr_provider_parse(f, status, body, len, max_len, hp, &a) == 0);
    check_answer(&a, status, len, max_len);

    check(ngx_dr_provider_parse(f, status, body, len, max_len, hp, &b) == 0);
    check(a.kind == b.kind && a.retryable == b.retryable
          && a.text_len == b.text_len
          && (a.text == NULL) == (b.text == NULL)
          && (a.text == NULL || memcmp(a.text, b.text, a.text_len) == 0)
          && strcmp(a.error, b.error) == 0
          && strcmp(a.finish_raw, b.finish_raw) == 0
          && a.input_tokens == b.input_tokens
          && a.output_tokens == b.output_tokens
          && a.retry_after_ms == b.retry_after_ms);

    /* the contract on any string the provider sent: it is only read */
    check(len == 0 || memcmp(body, data, len) == 0);

    ngx_dr_provider_answer_free(&a);
    ngx_dr_provider_answer_free(&b);
    check(a.text == NULL);
    ngx_dr_provider_answer_free(&a);

    for (k = 0; k < 7; k++) {
        free(hv[k]);
    }

    free(body);

    return 0;
}


/* exactly len bytes (and a NUL if asked); malloc(0) may give NULL */
static char *
copy(const uint8_t *p, size_t len, int nul)
{
    char  *c;

    c = malloc(len + (nul ? 1 : 0));
    check(c != NULL || len + nul == 0);

    if (len) {
        memcpy(c, p, len);
    }

    if (nul) {
        c[len] = '\0';
    }

    return c;
}


/* a separate reading of Unicode table 3-7, by code point value */
static int
utf8_ok(const unsigned char *p, size_t len)
{
    size_t    i, j, n;
    uint32_t  cp, min;

    for (i = 0; i < len; i += n) {
        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            n = 2;
            cp = p[i] & 0x1f;
            min = 0x80;

        } else if ((p[i] & 0xf0) == 0xe0) {
            n = 3;
            cp = p[i] & 0x0f;
            min = 0x800;

        } else if ((p[i] & 0xf8) == 0xf0) {
            n = 4;
            cp = p[i] & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if (n > len - i) {
            return 0;
        }

        for (j = 1; j < n; j++) {
            if ((p[i + j] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i + j] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


/* NUL-terminated within size, only 0x20..0x7e */
static int
printable(const char *s, size_t size)
{
    size_t  i;

    for (i = 0; i < size && s[i] != '\0'; i++) {
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e) {
            return 0;
        }
    }

    return i < size;
}


/*
 * A part is plain when a regular expression would say so:
 * ^(.{0,3}|[0-9]+|[a-z]+|[A-Z]+|[A-Z][a-z]+)$
 */

static int
plain(const char *s, size_t n)
{
    size_t  i;

    if (n <= 3) {
        return 1;
    }

    i = (s[0] >= 'A' && s[0] <= 'Z') ? 1 : 0;

    if (strspn(s + i, "abcdefghijklmnopqrstuvwxyz") >= n - i) {
        return 1;
    }

    return strspn(s, "0123456789") >= n
           || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") >= n;
}


static void
check_answer(const ngx_dr_answer_t *a, long status, size_t len,
    size_t max_len)
{
    int          secret;
    size_t       i, j, k, p;
    const char  *e;

    check(printable(a->error, sizeof(a->error)));
    check(printable(a->finish_raw, sizeof(a->finish_raw)));
    check(printable(a->model, sizeof(a->model)));
    check(strlen(a->error) <= 159);

    /* what an API key looks like never reaches the error line */
    e = a->error;

    for (i = 0; e[i] != '\0'; i = j + (e[j] != '\0')) {
        j = i + strspn(e + i, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");

        if (j - i < NGX_DR_PROVIDER_SECRET_RUN) {
            continue;
        }

        secret = 0;

        for (k = i; k < j; k = p + 1) {
            for (p = k; p < j && e[p] != '-' && e[p] != '_'; p++) {
                /* void */
            }

            secret |= !plain(e + k, p - k);
        }

        check(!secret);
    }

    check(strcmp(a->finish_reason, "") == 0
          || strcmp(a->finish_reason, "stop") == 0
          || strcmp(a->finish_reason, "length") == 0
          || strcmp(a->finish_reason, "content_filter") == 0
          || strcmp(a->finish_reason, "other") == 0);

    check(a->input_tokens >= -1 && a->output_tokens >= -1);
    check(a->retry_after_ms >= -1
          && a->retry_after_ms <= NGX_DR_PROVIDER_RETRY_MAX_MS);

    switch (a->kind) {

    case NGX_DR_ANSWER_OK:
        check(status >= 200 && status <= 299);
        check(max_len == 0 || len <= max_len);
        check(a->retryable == 0);
        check(a->error[0] == '\0');
        check(a->text != NULL && a->text_len > 0);
        check(a->text[a->text_len] == '\0');
        check(memchr(a->text, '\0', a->text_len) == NULL);
        check(utf8_ok((const unsigned char *) a->text, a->text_len));
        check(a->finish_reason[0] != '\0'
              && strcmp(a->finish_reason, "content_filter") != 0);
        break;

    case NGX_DR_ANSWER_BAD:
        check(status >= 200 && status <= 299);
        check(a->text == NULL && a->text_len == 0);
        check(a->retryable == 0 || a->retryable == 1);
        check(a->error[0] != '\0');
        check(!(max_len > 0 && len > max_len) || a->retryable == 1);
        break;

    case NGX_DR_ANSWER_RETRY:
        check(status <= 0 || status == 408 || status == 409
              || status == 429 || (status >= 500 && status <= 599));
        check(a->text == NULL && a->retryable == 1);
        check(a->error[0] != '\0');
        break;

    case NGX_DR_ANSWER_FAIL:
        check(status > 0 && (status < 200 || status > 299));
        check(a->text == NULL && a->retryable == 0);
        check(a->error[0] != '\0');
        break;

    default:
        check(0);
    }
}


static void
fuzz_build(ngx_dr_format_t f, const uint8_t *p, size_t len)
{
    int                         i, rc;
    char                       *prompt, *body;
    json_t                     *j, *v;
    json_error_t                err;
    ngx_dr_provider_request_t   req;

    prompt = copy(p, len, 1);

    rc = ngx_dr_provider_build(f, "model-x", prompt, FUZZ_KEY, 100, 0.5,
                               &req);

    /* only a prompt that is not UTF-8 may be refused */
    check(rc == 0 || !utf8_ok((const unsigned char *) prompt,
                              strlen(prompt)));

    if (rc != 0) {
        check(req.path == NULL && req.body == NULL && req.nheaders == 0);
        free(prompt);
        return;
    }

    check(req.body_len == strlen(req.body));
    check(strstr(req.path, FUZZ_KEY) == NULL);

    for (i = 0; i < req.nheaders; i++) {
        check(req.headers[i] != NULL);
        check(printable(req.headers[i], strlen(req.headers[i]) + 1));
    }

    j = json_loadb(req.body, req.body_len, 0, &err);
    check(j != NULL);

    if (f == NGX_DR_FORMAT_GEMINI) {
        v = json_object_get(json_array_get(json_object_get(
                json_array_get(json_object_get(j, "contents"), 0), "parts"),
                0), "text");

    } else {
        v = json_object_get(json_array_get(json_object_get(j, "messages"),
                                           0), "content");
    }

    check(json_is_string(v) && strcmp(json_string_value(v), prompt) == 0);

    /*
     * The key is nowhere in the body but where the prompt put it.  The
     * body's text cannot tell: "f", two form feeds and "uzz-FAKE-..." in
     * a prompt are escaped as "f\f\fuzz-FAKE-...", which holds the key.
     * The document with the prompt's text emptied can.
     */
    check(json_string_set(v, "") == 0);
    body = json_dumps(j, JSON_COMPACT);
    check(body != NULL && strstr(body, FUZZ_KEY) == NULL);
    free(body);

    json_decref(j);
    ngx_dr_provider_request_free(&req);
    free(prompt);
}


/*
 * Domain Runner: unit tests of ngx_dr_module/ngx_dr_provider.c, in TAP.
 *
 * The answers are the ones t/sim/provider-sim sends, captured with curl
 * and shortened (the answer texts cut, the structure and every member
 * kept), for instance:
 *
 *   t/sim/provider-sim --port 0 --latency-ms 5 --faults malformed=1
 *   curl -s http://127.0.0.1:PORT/openai/v1/chat/completions \
 *       -H 'Authorization: Bearer sk-...' -d '{"model": "gpt-4o-mini",
 *       "messages": [{"role": "user", "content": "What is example.com?"}]}'
 *
 * for every fault kind and each wire format, plus what the simulator
 * does not send but the real APIs do: content filters, thinking blocks,
 * Mistral's content chunks, a 401 that echoes the whole key, 429s with
 * an HTTP-date or only rate-limit headers.  Every answer parsed here is
 * also checked for an error line of printable ASCII, at most 159 bytes,
 * holding no part of any test key.
 *
 * Build and run (t/22-provider-unit.t runs the binary under prove):
 *
 *   mkdir -p build/unit && cc -std=c99 -O2 -g -Wall -Wextra -Werror \
 *       -Ingx_dr_module -o build/unit/provider t/unit/provider.c \
 *       ngx_dr_module/ngx_dr_score.c ngx_dr_module/ngx_dr_validate.c \
 *       ngx_dr_module/ngx_dr_provider.c -ljansson -lm
 */


#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_dr_provider.h"
#include "tap.h"


/* the crawler's limit: the simulator's "huge" answer is just above it */
#define MAX_LEN   (10 * 1024 * 1024)

#define NELTS(a)  (sizeof(a) / sizeof((a)[0]))

/* Sun, 29 Nov 2026 12:50:14 GMT, when the simulator bodies were taken */
#define NOW       1795956614LL

#define OPENAI     NGX_DR_FORMAT_OPENAI
#define ANTHROPIC  NGX_DR_FORMAT_ANTHROPIC
#define GEMINI     NGX_DR_FORMAT_GEMINI


/* keys in the shapes the providers issue; none may reach an error line */
static const char *const  keys[] = {
    "sk-proj-FAKE0test1NOTaKEY2FAKE0test1NOTaKEY2",         /* OpenAI */
    "sk-ant-api03-FAKE0test1NOTaKEY2FAKE0test1NOTaKEY2FAKE",  /* Anthropic */
    "AIzaFAKE0test1NOTaKEY2FAKE0test1NOTaKEY",              /* Google */
    "sk-FAKE0test1NOTaKEY2FAKE0test1NOTa",                  /* DeepSeek */
    "xai-FAKE0test1NOTaKEY2FAKE0test1NOTaKEY2FAKE0test1NO",  /* xAI */
    "pplx-FAKE0test1NOTaKEY2FAKE0test1NOTaKEY2FAKE0test1NO"  /* Perplexity */
};


static const char *find(const char *hay, size_t len, const char *needle,
    size_t n);
static void error_line(const char *what);
static int answer(ngx_dr_format_t f, long status, const char *body,
    const ngx_dr_answer_headers_t *h);
static int starts(const char *s, const char *prefix);
static json_t *body_of(const ngx_dr_provider_request_t *req);
static int key_only_in_header(const ngx_dr_provider_request_t *req,
    const char *key, const char *header);
static void test_format(void);
static void test_build_openai(void);
static void test_build_anthropic(void);
static void test_build_gemini(void);
static void test_build_invalid(void);
static void test_parse_openai(void);
static void test_parse_anthropic(void);
static void test_parse_gemini(void);
static void test_usage(void);
static void test_faults(void);
static void test_statuses(void);
static void test_retry_after(void);
static void test_unusable(void);
static void test_error_lines(void);
static void test_cost(void);
static void test_backoff(void);
static void test_keys(void);


/* the answer under test, and what every parse so far has broken */
static ngx_dr_answer_t  a;
static int              parses;
static int              bad_lines;


/* memmem() is a GNU extension */
static const char *
find(const char *hay, size_t len, const char *needle, size_t n)
{
    size_t  i;

    for (i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return hay + i;
        }
    }

    return NULL;
}


/* printable ASCII, < 160 bytes, no 8 bytes in a row of any key */
static void
error_line(const char *what)
{
    size_t  i, j, n, len;

    for (len = 0; len < sizeof(a.error) && a.error[len] != '\0'; len++) {
        /* void */
    }

    if (len >= sizeof(a.error)) {
        bad_lines++;
        diag("%s: error line not terminated", what);
        return;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) a.error[i] < 0x20
            || (unsigned char) a.error[i] > 0x7e)
        {
            bad_lines++;
            diag("%s: byte %zu of the error line is 0x%02x", what, i,
                 (unsigned char) a.error[i]);
            return;
        }
    }

    for (i = 0; i < NELTS(keys); i++) {
        n = strlen(keys[i]);

        for (j = 0; j + 8 <= n; j++) {
            if (find(a.error, len, keys[i] + j, 8) != NULL) {
                bad_lines++;
                diag("%s: '%s' holds a piece of key %zu", what, a.error, i);
                return;
            }
        }
    }
}


static int
answer(ngx_dr_format_t f, long status, const char *body,
    const ngx_dr_answer_headers_t *h)
{
    int   rc;
    char  what[64];

    ngx_dr_provider_answer_free(&a);

    rc = ngx_dr_provider_parse(f, status, body, body ? strlen(body) : 0,
                               MAX_LEN, h, &a);

    parses++;
    snprintf(what, sizeof(what), "parse %d (HTTP %ld)", parses, status);
    error_line(what);

    if (rc != 0) {
        bad_lines++;
        diag("%s returned %d", what, rc);
    }

    return rc;
}


static int
starts(const char *s, const char *prefix)
{
    int  r;

    r = (s != NULL && strncmp(s, prefix, strlen(prefix)) == 0);

    if (!r) {
        diag("'%s' does not start with '%s'", s ? s : "(null)", prefix);
    }

    return r;
}


static json_t *
body_of(const ngx_dr_provider_request_t *req)
{
    json_t        *j;
    json_error_t   err;

    if (req->body == NULL) {
        return NULL;
    }

    j = json_loadb(req->body, req->body_len, 0, &err);

    if (j == NULL) {
        diag("built body is not JSON: %s", err.text);
    }

    return j;
}


/* the key in exactly one place: the named header, right after ": " */
static int
key_only_in_header(const ngx_dr_provider_request_t *req, const char *key,
    const char *header)
{
    int     i, found;
    size_t  n;

    if (req->path == NULL || req->body == NULL
        || strstr(req->path, key) != NULL
        || find(req->body, req->body_len, key, strlen(key)) != NULL)
    {
        return 0;
    }

    found = 0;
    n = strlen(header);

    for (i = 0; i < req->nheaders; i++) {
        if (strstr(req->headers[i], key) == NULL) {
            continue;
        }

        if (strncmp(req->headers[i], header, n) != 0) {
            return 0;
        }

        found++;
    }

    return found == 1;
}


static void
test_format(void)
{
    ngx_dr_format_t  f;

    f = GEMINI;
    ok(ngx_dr_provider_format("openai", &f) == 0 && f == OPENAI,
       "format openai");
    ok(ngx_dr_provider_format("Anthropic", &f) == 0 && f == ANTHROPIC,
       "format Anthropic (case ignored)");
    ok(ngx_dr_provider_format("gemini", &f) == 0 && f == GEMINI,
       "format gemini");

    f = OPENAI;
    ok(ngx_dr_provider_format("google", &f) == -1
       && ngx_dr_provider_format("openai2", &f) == -1
       && ngx_dr_provider_format("open", &f) == -1
       && ngx_dr_provider_format("", &f) == -1
       && ngx_dr_provider_format(NULL, &f) == -1 && f == OPENAI,
       "unknown format names are refused and leave *out alone");

    is_str(ngx_dr_provider_format_name(ANTHROPIC), "anthropic",
           "format name anthropic");
    is_str(ngx_dr_provider_kind_name(NGX_DR_ANSWER_RETRY), "retry",
           "kind name retry");
}


static void
test_build_openai(void)
{
    int                         rc;
    json_t                     *j, *m;
    ngx_dr_provider_request_t   req;

    rc = ngx_dr_provider_build(OPENAI, "gpt-4o-mini",
                               "What is example.com known for?", keys[0],
                               300, 0.7, &req);
    is_int(rc, 0, "openai: built");
    is_str(req.path, "/chat/completions", "openai: path");
    is_int(req.nheaders, 2, "openai: two headers");
    ok(req.nheaders == 2
       && strcmp(req.headers[0],
                 "Authorization: Bearer "
                 "sk-proj-FAKE0test1NOTaKEY2FAKE0test1NOTaKEY2") == 0,
       "openai: Authorization: Bearer with the key");
    ok(req.nheaders == 2
       && strcmp(req.headers[1], "Content-Type: application/json") == 0,
       "openai: Content-Type");
    ok(key_only_in_header(&req, keys[0], "Authorization: "),
       "openai: the key is in its header only, not in path or body");
    ok(req.body != NULL && strlen(req.body) == req.body_len,
       "openai: body_len is the length of the NUL-terminated body");

    j = body_of(&req);
    m = json_array_get(json_object_get(j, "messages"), 0);

    is_int(json_object_size(j), 4, "openai: model, messages, max_tokens, "
           "temperature and nothing else");
    is_str(json_string_value(json_object_get(j, "model")), "gpt-4o-mini",
           "openai: model");
    ok(json_array_size(json_object_get(j, "messages")) == 1
       && json_object_size(m) == 2
       && strcmp(json_string_value(json_object_get(m, "role")), "user") == 0
       && strcmp(json_string_value(json_object_get(m, "content")),
                 "What is example.com known for?") == 0,
       "openai: one user message with the prompt");
    is_int(json_integer_value(json_object_get(j, "max_tokens")), 300,
           "openai: max_tokens");
    is_double(json_number_value(json_object_get(j, "temperature")), 0.7, 0,
              "openai: temperature");
    ok(strstr(req.body, "\"temperature\":0.7") != NULL,
       "openai: temperature written as 0.7, not 0.69999999999999996");

    json_decref(j);
    ngx_dr_provider_request_free(&req);
    ok(req.path == NULL && req.body == NULL && req.nheaders == 0,
       "openai: freed and zeroed");
    ngx_dr_provider_request_free(&req);

    /* reasoning models refuse max_tokens and a temperature */
    rc = ngx_dr_provider_build(OPENAI, "o3-mini", "hi", keys[0], 500, 0.0,
                               &req);
    j = body_of(&req);
    ok(rc == 0
       && json_integer_value(json_object_get(j, "max_completion_tokens"))
          == 500
       && json_object_get(j, "max_tokens") == NULL
       && json_object_get(j, "temperature") == NULL,
       "openai o3-mini: max_completion_tokens, no temperature");
    json_decref(j);
    ngx_dr_provider_request_free(&req);

    rc = ngx_dr_provider_build(OPENAI, "gpt-5-mini", "hi", keys[0], 500, 1.0,
                               &req);
    j = body_of(&req);
    ok(rc == 0 && json_object_get(j, "max_completion_tokens") != NULL
       && json_object_get(j, "temperature") == NULL,
       "openai gpt-5-mini: max_completion_tokens, no temperature");
    json_decref(j);
    ngx_dr_provider_request_free(&req);

    /* a negative temperature: the provider's default; quotes, UTF-8 */
    rc = ngx_dr_provider_build(OPENAI, "sonar", "Say \"caf\xc3\xa9\"\n\\ ok",
                               keys[5], 1, -1.0, &req);
    j = body_of(&req);
    m = json_array_get(json_object_get(j, "messages"), 0);
    ok(rc == 0 && json_object_get(j, "temperature") == NULL
       && json_integer_value(json_object_get(j, "max_tokens")) == 1
       && strcmp(json_string_value(json_object_get(m, "content")),
                 "Say \"caf\xc3\xa9\"\n\\ ok") == 0,
       "perplexity: no temperature when negative; the prompt round-trips");
    json_decref(j);
    ngx_dr_provider_request_free(&req);
}


static void
test_build_anthropic(void)
{
    int                         rc;
    json_t                     *j, *m;
    ngx_dr_provider_request_t   req;

    rc = ngx_dr_provider_build(ANTHROPIC, "claude-3-5-haiku-20241022",
                               "What is example.com?", keys[1], 400, 0.0,
                               &req);
    is_int(rc, 0, "anthropic: built");
    is_str(req.path, "/v1/messages", "anthropic: path");
    ok(req.nheaders == 3
       && strcmp(req.headers[0], "x-api-key: sk-ant-api03-FAKE0test1NOTaKE"
                 "Y2FAKE0test1NOTaKEY2FAKE") == 0
       && strcmp(req.headers[1], "anthropic-version: 2023-06-01") == 0
       && strcmp(req.headers[2], "Content-Type: application/json") == 0,
       "anthropic: x-api-key, anthropic-version, Content-Type");
    ok(key_only_in_header(&req, keys[1], "x-api-key: "),
       "anthropic: the key is in x-api-key only");

    j = body_of(&req);
    m = json_array_get(json_object_get(j, "messages"), 0);
    ok(json_object_size(j) == 4
       && strcmp(json_string_value(json_object_get(j, "model")),
                 "claude-3-5-haiku-20241022") == 0
       && json_integer_value(json_object_get(j, "max_tokens")) == 400
       && json_is_real(json_object_get(j, "temperature"))
       && json_real_value(json_object_get(j, "temperature")) == 0.0
       && strcmp(json_string_value(json_object_get(m, "role")), "user") == 0
       && strcmp(json_string_value(json_object_get(m, "content")),
                 "What is example.com?") == 0
       && json_object_get(j, "system") == NULL,
       "anthropic: model, max_tokens, messages, temperature 0");
    json_decref(j);
    ngx_dr_provider_request_free(&req);

    rc = ngx_dr_provider_build(ANTHROPIC, "claude-sonnet-4-5", "hi", keys[1],
                               10, 1.5, &req);
    ok(rc == -1 && req.body == NULL && req.nheaders == 0,
       "anthropic: temperature 1.5 is over its range of 0..1");
}


static void
test_build_gemini(void)
{
    int                         rc;
    json_t                     *j, *c, *g;
    ngx_dr_provider_request_t   req;

    rc = ngx_dr_provider_build(GEMINI, "gemini-2.0-flash",
                               "What is example.com?", keys[2], 256, 0.2,
                               &req);
    is_int(rc, 0, "gemini: built");
    is_str(req.path, "/v1beta/models/gemini-2.0-flash:generateContent",
           "gemini: path names the model");
    ok(req.nheaders == 2
       && strcmp(req.headers[0], "x-goog-api-key: AIzaFAKE0test1NOTaKEY2FA"
                 "KE0test1NOTaKEY") == 0
       && strcmp(req.headers[1], "Content-Type: application/json") == 0,
       "gemini: x-goog-api-key and Content-Type");
    ok(key_only_in_header(&req, keys[2], "x-goog-api-key: ")
       && strchr(req.path, '?') == NULL,
       "gemini: the key is in its header only, never ?key=");

    j = body_of(&req);
    c = json_array_get(json_object_get(j, "contents"), 0);
    g = json_object_get(j, "generationConfig");
    ok(json_object_size(j) == 2
       && strcmp(json_string_value(json_object_get(c, "role")), "user") == 0
       && strcmp(json_string_value(json_object_get(json_array_get(
                     json_object_get(c, "parts"), 0), "text")),
                 "What is example.com?") == 0
       && json_integer_value(json_object_get(g, "maxOutputTokens")) == 256
       && json_real_value(json_object_get(g, "temperature")) == 0.2
       && json_object_get(j, "model") == NULL,
       "gemini: contents[0].parts[0].text and generationConfig");
    json_decref(j);
    ngx_dr_provider_request_free(&req);

    rc = ngx_dr_provider_build(GEMINI, "models/gemini-2.5-pro", "hi",
                               keys[2], 8, -1, &req);
    ok(rc == 0 && strcmp(req.path,
                         "/v1beta/models/gemini-2.5-pro:generateContent")
                  == 0,
       "gemini: a models/ prefix is not doubled");
    ngx_dr_provider_request_free(&req);

    rc = ngx_dr_provider_build(GEMINI, "tuned/a:b%c?", "hi", keys[2], 8, -1,
                               &req);
    is_str(req.path, "/v1beta/models/tuned%2Fa%3Ab%25c%3F:generateContent",
           "gemini: the model is percent-encoded into the path");
    ngx_dr_provider_request_free(&req);
}


static void
test_build_invalid(void)
{
    int                         i, fails;
    ngx_dr_provider_request_t   req;

    struct {
        ngx_dr_format_t   f;
        const char       *model;
        const char       *prompt;
        const char       *key;
        unsigned          max;
        double            temp;
        const char       *name;
    } bad[] = {
        { OPENAI, "gpt-4o", "hi", "sk-abc\r\nX-Evil: 1", 10, 0,
          "a key with CR LF (header injection)" },
        { OPENAI, "gpt-4o", "hi", "sk-abc def", 10, 0, "a key with a space" },
        { OPENAI, "gpt-4o", "hi", "", 10, 0, "an empty key" },
        { OPENAI, "gpt-4o", "hi", NULL, 10, 0, "no key" },
        { ANTHROPIC, "", "hi", keys[1], 10, 0, "an empty model" },
        { GEMINI, "gem\nini", "hi", keys[2], 10, 0, "a model with LF" },
        { OPENAI, "gpt-4o", "caf\xe9", keys[0], 10, 0,
          "a prompt that is not UTF-8" },
        { OPENAI, "gpt-4o", NULL, keys[0], 10, 0, "no prompt" },
        { ANTHROPIC, "claude-haiku-4-5", "\xc0\xaf", keys[1], 10, 0,
          "an overlong UTF-8 prompt (anthropic)" },
        { GEMINI, "gemini-2.0-flash", "x\xed\xa0\x80", keys[2], 10, 0,
          "a surrogate in the prompt (gemini)" },
        { ANTHROPIC, "claude-haiku-4-5", "hi", keys[1], 0, 0,
          "max_tokens 0" },
        { OPENAI, "gpt-4o", "hi", keys[0], 10, 2.01, "temperature 2.01" },
        { GEMINI, "gemini-2.0-flash", "hi", keys[2], 10, NAN,
          "temperature NaN" },
        { (ngx_dr_format_t) 7, "gpt-4o", "hi", keys[0], 10, 0,
          "an unknown format" }
    };

    for (i = 0; i < (int) NELTS(bad); i++) {
        memset(&req, 0xa5, sizeof(req));
        fails = ngx_dr_provider_build(bad[i].f, bad[i].model, bad[i].prompt,
                                      bad[i].key, bad[i].max, bad[i].temp,
                                      &req);
        ok(fails == -1 && req.path == NULL && req.body == NULL
           && req.nheaders == 0 && req.headers[0] == NULL,
           "build refuses %s, *out zeroed", bad[i].name);
    }
}


static void
test_parse_openai(void)
{
    static const char  ok_stop[] =
        "{\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,"
        "\"logprobs\":null,\"message\":{\"content\":\"example.com is the "
        "website of Example, a company with an online presence.\","
        "\"refusal\":null,\"role\":\"assistant\"}}],\"created\":1795956208,"
        "\"id\":\"chatcmpl-jAMBGBGRV20SDW0rfLpJBCSwMUW4D\",\"model\":"
        "\"gpt-4o-mini-2024-07-18\",\"object\":\"chat.completion\","
        "\"system_fingerprint\":\"fp_sim8a4342\",\"usage\":{"
        "\"completion_tokens\":164,\"prompt_tokens\":13,"
        "\"total_tokens\":177}}";

    static const char  ok_length[] =
        "{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,"
        "\"logprobs\":null,\"message\":{\"content\":\"example.com is the "
        "website of Example, a\",\"refusal\":null,\"role\":\"assistant\"}}],"
        "\"created\":1795956208,\"id\":\"chatcmpl-U3GWsEe2uqGadyyEqbD7btNoI"
        "cM0k\",\"model\":\"gpt-4o-mini-2024-07-18\",\"object\":"
        "\"chat.completion\",\"usage\":{\"completion_tokens\":10,"
        "\"prompt_tokens\":13,\"total_tokens\":23}}";

    /* Perplexity: citations next to choices, no system_fingerprint */
    static const char  perplexity[] =
        "{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,"
        "\"logprobs\":null,\"message\":{\"content\":\"GitHub (github.com) is "
        "a developer tools company in code hosting.[1]\",\"refusal\":null,"
        "\"role\":\"assistant\"}}],\"citations\":[\"https://github.com/\","
        "\"https://en.wikipedia.org/wiki/GitHub\"],\"search_results\":[{"
        "\"title\":\"GitHub\",\"url\":\"https://github.com/\"}],"
        "\"created\":1795956209,\"id\":\"chatcmpl-8kF0TG7JHJoAvbL3BsjX8CS"
        "GdCzFS\",\"model\":\"sonar\",\"object\":\"chat.completion\","
        "\"usage\":{\"completion_tokens\":60,\"prompt_tokens\":7,"
        "\"total_tokens\":67}}";

    /* Mistral's magistral models: content as chunks, thinking first */
    static const char  mistral[] =
        "{\"id\":\"a1\",\"object\":\"chat.completion\",\"model\":"
        "\"magistral-medium-2506\",\"choices\":[{\"index\":0,\"message\":{"
        "\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\","
        "\"thinking\":[{\"type\":\"text\",\"text\":\"hmm\"}]},{\"type\":"
        "\"text\",\"text\":\"Stripe is \"},{\"type\":\"text\",\"text\":"
        "\"a payments company.\"}]},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":21}}";

    /* DeepSeek's reasoner: the reasoning is not the answer */
    static const char  deepseek[] =
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"finish_reason\":\"stop\","
        "\"message\":{\"role\":\"assistant\",\"content\":\"Shopify sells "
        "e-commerce software.\",\"reasoning_content\":\"Let me think.\"}}],"
        "\"model\":\"deepseek-reasoner\",\"usage\":{\"prompt_tokens\":8,"
        "\"completion_tokens\":40}}";

    static const char  together[] =
        "{\"id\":\"t\",\"choices\":[{\"index\":0,\"finish_reason\":\"eos\","
        "\"message\":{\"role\":\"assistant\",\"content\":\"Zoom is a video "
        "conferencing company.\"}}],\"model\":\"meta-llama/Llama-3.3-70B-"
        "Instruct-Turbo\",\"usage\":{\"prompt_tokens\":8,"
        "\"completion_tokens\":9}}";

    static const char  refusal[] =
        "{\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"message\":"
        "{\"role\":\"assistant\",\"content\":null,\"refusal\":\"I'm sorry, I "
        "can't help with that.\"}}],\"model\":\"gpt-4o-2024-08-06\"}";

    static const char  tools[] =
        "{\"choices\":[{\"index\":0,\"finish_reason\":\"tool_calls\","
        "\"message\":{\"role\":\"assistant\",\"content\":\"Looking it up.\","
        "\"tool_calls\":[]}}],\"model\":\"grok-3\"}";

    answer(OPENAI, 200, ok_stop, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && a.retryable == 0 && a.error[0] == '\0',
       "openai 200: OK, nothing to retry, no error");
    is_str(a.text, "example.com is the website of Example, a company with "
           "an online presence.", "openai 200: the text");
    ok(a.text != NULL && a.text_len == strlen(a.text),
       "openai 200: text_len");
    ok(strcmp(a.finish_reason, "stop") == 0
       && strcmp(a.finish_raw, "stop") == 0,
       "openai 200: finish stop");
    ok(a.input_tokens == 13 && a.output_tokens == 164,
       "openai 200: prompt_tokens 13, completion_tokens 164");
    is_str(a.model, "gpt-4o-mini-2024-07-18",
           "openai 200: the dated snapshot that answered");
    is_int(a.retry_after_ms, -1, "openai 200: no retry_after");

    answer(OPENAI, 200, ok_length, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && strcmp(a.finish_reason, "length") == 0
       && strcmp(a.finish_raw, "length") == 0
       && strcmp(a.text, "example.com is the website of Example, a") == 0,
       "openai 200 cut by max_tokens: OK, finish length, the text kept");

    answer(OPENAI, 200, perplexity, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && starts(a.text, "GitHub (github.com)")
       && strcmp(a.finish_reason, "length") == 0
       && a.input_tokens == 7 && a.output_tokens == 60
       && strcmp(a.model, "sonar") == 0,
       "perplexity: citations and search_results are no obstacle");

    answer(OPENAI, 200, mistral, NULL);
    is_str(a.text, "Stripe is a payments company.",
           "mistral: text chunks joined, the thinking chunk left out");

    answer(OPENAI, 200, deepseek, NULL);
    is_str(a.text, "Shopify sells e-commerce software.",
           "deepseek-reasoner: content, not reasoning_content");

    answer(OPENAI, 200, together, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && strcmp(a.finish_reason, "stop") == 0
       && strcmp(a.finish_raw, "eos") == 0,
       "together: finish eos is stop");

    answer(OPENAI, 200, refusal, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK
       && strcmp(a.text, "I'm sorry, I can't help with that.") == 0,
       "openai: a refusal with content null is the answer (the scorer "
       "counts refusals)");

    answer(OPENAI, 200, tools, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && strcmp(a.finish_reason, "other") == 0
       && strcmp(a.finish_raw, "tool_calls") == 0,
       "xai: finish tool_calls is other");
}


static void
test_parse_anthropic(void)
{
    static const char  end_turn[] =
        "{\"content\":[{\"text\":\"example.com is the website of Example, a "
        "company with an online presence.\",\"type\":\"text\"}],\"id\":"
        "\"msg_01wprHy6i5b9lCZPk3ruTNPs\",\"model\":\"claude-3-5-haiku-2024"
        "1022\",\"role\":\"assistant\",\"stop_reason\":\"end_turn\","
        "\"stop_sequence\":null,\"type\":\"message\",\"usage\":{"
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
        "\"input_tokens\":7,\"output_tokens\":233}}";

    static const char  max_tokens[] =
        "{\"content\":[{\"text\":\"example.com is the website of Example, "
        "a\",\"type\":\"text\"}],\"id\":\"msg_01A70OsnYrhPZEBf5esBHzAJ\","
        "\"model\":\"claude-3-5-haiku-20241022\",\"role\":\"assistant\","
        "\"stop_reason\":\"max_tokens\",\"stop_sequence\":null,\"type\":"
        "\"message\",\"usage\":{\"cache_creation_input_tokens\":0,"
        "\"cache_read_input_tokens\":0,\"input_tokens\":7,"
        "\"output_tokens\":10}}";

    /* extended thinking and text split into blocks by citations */
    static const char  thinking[] =
        "{\"type\":\"message\",\"role\":\"assistant\",\"model\":"
        "\"claude-sonnet-4-5\",\"content\":[{\"type\":\"thinking\","
        "\"thinking\":\"The user asks...\",\"signature\":\"EqQB\"},"
        "{\"type\":\"text\",\"text\":\"Notion is \"},{\"type\":\"text\","
        "\"text\":\"a workspace app.\"}],\"stop_reason\":\"stop_sequence\","
        "\"stop_sequence\":\"\\n\\nHuman:\",\"usage\":{\"input_tokens\":12,"
        "\"output_tokens\":80}}";

    answer(ANTHROPIC, 200, end_turn, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK
       && starts(a.text, "example.com is the website of Example")
       && strcmp(a.finish_reason, "stop") == 0
       && strcmp(a.finish_raw, "end_turn") == 0,
       "anthropic 200: OK, end_turn is stop");
    ok(a.input_tokens == 7 && a.output_tokens == 233
       && strcmp(a.model, "claude-3-5-haiku-20241022") == 0,
       "anthropic 200: input_tokens, output_tokens, model");

    answer(ANTHROPIC, 200, max_tokens, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && strcmp(a.finish_reason, "length") == 0
       && strcmp(a.finish_raw, "max_tokens") == 0,
       "anthropic: max_tokens is length");

    answer(ANTHROPIC, 200, thinking, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK
       && strcmp(a.text, "Notion is a workspace app.") == 0
       && strcmp(a.finish_reason, "stop") == 0,
       "anthropic: text blocks joined, thinking left out, stop_sequence "
       "is stop");
}


static void
test_parse_gemini(void)
{
    static const char  stop[] =
        "{\"candidates\":[{\"avgLogprobs\":-0.13,\"content\":{\"parts\":[{"
        "\"text\":\"example.com is the website of Example, an online "
        "business.\"}],\"role\":\"model\"},\"finishReason\":\"STOP\","
        "\"index\":0}],\"modelVersion\":\"gemini-2.0-flash\",\"responseId\":"
        "\"wG1aFbjzOEbH3Jifq9xw0E\",\"usageMetadata\":{"
        "\"candidatesTokenCount\":151,\"candidatesTokensDetails\":[{"
        "\"modality\":\"TEXT\",\"tokenCount\":151}],\"promptTokenCount\":7,"
        "\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":7}],"
        "\"totalTokenCount\":158}}";

    static const char  max[] =
        "{\"candidates\":[{\"avgLogprobs\":-0.21,\"content\":{\"parts\":[{"
        "\"text\":\"example.com is the website of Example, an\"}],\"role\":"
        "\"model\"},\"finishReason\":\"MAX_TOKENS\",\"index\":0}],"
        "\"modelVersion\":\"gemini-2.0-flash\",\"responseId\":\"3kMSEFGbfVG"
        "K8BBT232J5P\",\"usageMetadata\":{\"candidatesTokenCount\":10,"
        "\"promptTokenCount\":7,\"totalTokenCount\":17}}";

    /* 2.5 models: a thought summary part, thoughts billed as output */
    static const char  thoughts[] =
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"**Thinking**"
        "\",\"thought\":true},{\"text\":\"Figma is a design \"},{\"text\":"
        "\"tool.\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],"
        "\"usageMetadata\":{\"promptTokenCount\":6,\"candidatesTokenCount\":"
        "5,\"thoughtsTokenCount\":120,\"totalTokenCount\":131},"
        "\"modelVersion\":\"gemini-2.5-flash\"}";

    answer(GEMINI, 200, stop, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK
       && strcmp(a.text, "example.com is the website of Example, an online "
                 "business.") == 0
       && strcmp(a.finish_reason, "stop") == 0
       && strcmp(a.finish_raw, "STOP") == 0,
       "gemini 200: OK, STOP is stop");
    ok(a.input_tokens == 7 && a.output_tokens == 151
       && strcmp(a.model, "gemini-2.0-flash") == 0,
       "gemini 200: promptTokenCount, candidatesTokenCount, modelVersion");

    answer(GEMINI, 200, max, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && strcmp(a.finish_reason, "length") == 0
       && strcmp(a.finish_raw, "MAX_TOKENS") == 0,
       "gemini: MAX_TOKENS is length");

    answer(GEMINI, 200, thoughts, NULL);
    ok(a.kind == NGX_DR_ANSWER_OK
       && strcmp(a.text, "Figma is a design tool.") == 0
       && a.input_tokens == 6 && a.output_tokens == 125,
       "gemini 2.5: thought parts left out, thoughts counted as output");
}


static void
test_usage(void)
{
    /* the simulator's no_usage fault, in each format */
    answer(OPENAI, 200,
           "{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,"
           "\"logprobs\":null,\"message\":{\"content\":\"example.com is the "
           "website of Example\",\"refusal\":null,\"role\":\"assistant\"}}],"
           "\"created\":1795956213,\"id\":\"chatcmpl-sM5EGy9HRjm48Djp7L8jUg"
           "lShSpaW\",\"model\":\"gpt-4o-mini-2024-07-18\",\"object\":"
           "\"chat.completion\",\"system_fingerprint\":\"fp_sim8a4342\"}",
           NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && a.input_tokens == -1
       && a.output_tokens == -1,
       "openai without usage: OK, tokens -1");

    answer(ANTHROPIC, 200,
           "{\"content\":[{\"text\":\"example.com is the website\",\"type\":"
           "\"text\"}],\"id\":\"msg_01AQLohbOmsp5IQiIBhsJqGH\",\"model\":"
           "\"claude-3-5-haiku-20241022\",\"role\":\"assistant\","
           "\"stop_reason\":\"max_tokens\",\"stop_sequence\":null,\"type\":"
           "\"message\"}", NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && a.input_tokens == -1
       && a.output_tokens == -1,
       "anthropic without usage: OK, tokens -1");

    answer(GEMINI, 200,
           "{\"candidates\":[{\"avgLogprobs\":-0.38,\"content\":{\"parts\":[{"
           "\"text\":\"example.com is the website\"}],\"role\":\"model\"},"
           "\"finishReason\":\"MAX_TOKENS\",\"index\":0}],\"modelVersion\":"
           "\"gemini-2.0-flash\",\"responseId\":\"FF0JMfqQp2lvJ8CCKfCBpS\"}",
           NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && a.input_tokens == -1
       && a.output_tokens == -1,
       "gemini without usageMetadata: OK, tokens -1");

    /* protobuf JSON leaves zero counts out */
    answer(GEMINI, 200,
           "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi.\"}]},"
           "\"finishReason\":\"STOP\"}],\"usageMetadata\":{"
           "\"promptTokenCount\":4,\"totalTokenCount\":4}}", NULL);
    ok(a.input_tokens == 4 && a.output_tokens == 0,
       "gemini: a count missing from usageMetadata is 0");

    /* the simulator's huge answer counts tokens as a real number */
    answer(ANTHROPIC, 200,
           "{\"content\":[{\"text\":\"big\",\"type\":\"text\"}],"
           "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":7,"
           "\"output_tokens\":2180632.0}}", NULL);
    ok(a.input_tokens == 7 && a.output_tokens == 2180632,
       "anthropic: an integral real token count is read");

    answer(OPENAI, 200,
           "{\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":"
           "\"stop\"}],\"usage\":{\"prompt_tokens\":-3,"
           "\"completion_tokens\":\"12\"}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_OK && a.input_tokens == -1
       && a.output_tokens == -1,
       "openai: negative or string counts are unknown");
}


static void
test_faults(void)
{
    int                       i;
    char                     *big;
    size_t                    n;
    ngx_dr_answer_headers_t   h;

    static const char  tail[] =
        "\",\"type\":\"text\"}],\"stop_reason\":\"end_turn\",\"usage\":{"
        "\"input_tokens\":7}}\n";

    static const struct {
        ngx_dr_format_t   f;
        const char       *body;
        const char       *error;
        const char       *name;
    } bad[] = {

        /* malformed: a doubled comma */
        { OPENAI, "{\"choices\":[{\"finish_reason\":\"length\",,\"index\":0,"
          "\"logprobs\":null,\"message\":{\"content\":\"example.com is\","
          "\"refusal\":null,\"role\":\"assistant\"}}],\"created\":17959562"
          "12,\"model\":\"gpt-4o-mini-2024-07-18\"}",
          "200 with a body that is not JSON (line 1, column 39: string or "
          "'}' expected)", "openai malformed" },
        { ANTHROPIC, "{\"content\":[{\"text\":\"example.com is the website"
          "\",,\"type\":\"text\"}],\"id\":\"msg_01IP2pRi5nNVLd43nafoZgy5\"}",
          NULL, "anthropic malformed" },
        { GEMINI, "{\"candidates\":[{\"avgLogprobs\":-0.38,,\"content\":{"
          "\"parts\":[{\"text\":\"example.com\"}],\"role\":\"model\"}}]}",
          NULL, "gemini malformed" },

        /* truncated: the JSON cut in half */
        { OPENAI, "{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,"
          "\"logprobs\":null,\"message\":{\"content\":\"example.com is the "
          "website of Example\",\"refusal\":null,\"role\":\"assistant\"}}],"
          "\"created\":", "200 with truncated JSON (172 bytes)",
          "openai truncated" },
        { ANTHROPIC, "{\"content\":[{\"text\":\"example.com is the website "
          "of Example\",\"type\":\"text\"}],\"id\":\"msg_01ntji4BQL9OgAtAILS"
          "NNzzy\",\"model\":\"claude-3-5-haiku-20241",
          "200 with truncated JSON", "anthropic truncated" },
        { GEMINI, "{\"candidates\":[{\"avgLogprobs\":-0.38,\"content\":{"
          "\"parts\":[{\"text\":\"example.com is the website\"}],\"role\":"
          "\"model\"},\"finishReason\":\"MAX_TOKENS\",\"index\":0}],"
          "\"modelVersion\":\"gemini-2.0-flash\",",
          "200 with truncated JSON", "gemini truncated" },

        /* empty_choices */
        { OPENAI, "{\"choices\":[],\"created\":1795956213,\"id\":\"chatcmpl"
          "-mMxAhpRTnQ1jJ47Xc6fFW5GLVtRCG\",\"model\":\"gpt-4o-mini-2024-"
          "07-18\",\"object\":\"chat.completion\",\"usage\":{"
          "\"completion_tokens\":20,\"prompt_tokens\":13,"
          "\"total_tokens\":33}}", "200 with no choices",
          "openai empty_choices" },
        { ANTHROPIC, "{\"content\":[],\"id\":\"msg_01V8uuEigtglrEX7DU41gk3S"
          "\",\"model\":\"claude-3-5-haiku-20241022\",\"role\":\"assistant\","
          "\"stop_reason\":\"max_tokens\",\"stop_sequence\":null,\"type\":"
          "\"message\",\"usage\":{\"input_tokens\":7,\"output_tokens\":20}}",
          "200 with no content", "anthropic empty_choices" },
        { GEMINI, "{\"candidates\":[],\"modelVersion\":\"gemini-2.0-flash\","
          "\"responseId\":\"FnTqg9Tm0DYvp4wcGjOLAY\",\"usageMetadata\":{"
          "\"candidatesTokenCount\":20,\"promptTokenCount\":7,"
          "\"totalTokenCount\":27}}", "200 with no candidates",
          "gemini empty_choices" },

        /* bad_utf8: the simulator's bytes in the middle of the text */
        { OPENAI, "{\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,"
          "\"message\":{\"content\":\"Its main customers are small "
          "businesses. Most customers \xC3\x28\xA0\xA1 \xFF\xFE caf\xE9"
          " discover it.\",\"role\":\"assistant\"}}]}",
          "200 with invalid UTF-8 in the body (line 1", "openai bad_utf8" },
        { ANTHROPIC, "{\"content\":[{\"text\":\"It is a trusted and "
          "\xC3\x28\xA0\xA1 \xFF\xFE caf\xE9 reputable name.\",\"type\":"
          "\"text\"}],\"stop_reason\":\"end_turn\"}",
          "200 with invalid UTF-8 in the body", "anthropic bad_utf8" },
        { GEMINI, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":"
          "\"The A brand is closely tied to \xC3\x28\xA0\xA1 \xFF\xFE caf"
          "\xE9 products.\"}],\"role\":\"model\"},\"finishReason\":"
          "\"STOP\"}]}", "200 with invalid UTF-8 in the body",
          "gemini bad_utf8" },

        /* what jansson refuses besides: a lone surrogate */
        { OPENAI, "{\"choices\":[{\"message\":{\"content\":\"a \\ud800 b\"},"
          "\"finish_reason\":\"stop\"}]}",
          "200 with a body that is not JSON", "openai lone surrogate" }
    };

    for (i = 0; i < (int) NELTS(bad); i++) {
        answer(bad[i].f, 200, bad[i].body, NULL);
        ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1 && a.text == NULL
           && starts(a.error, bad[i].error ? bad[i].error
                                           : "200 with a body that is not "
                                             "JSON (line 1, column "),
           "%s: BAD, retryable, '%s'", bad[i].name, a.error);
    }

    answer(OPENAI, 200, bad[6].body, NULL);
    ok(a.input_tokens == 13 && a.output_tokens == 20,
       "openai empty_choices: the usage is still read (it was billed)");

    /* html: a CDN's 502 page, the same for every format */
    for (i = 0; i < 3; i++) {
        answer((ngx_dr_format_t) i, 502,
               "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
               "<center><h1>502 Bad Gateway</h1></center>\n<hr><center>"
               "cloudflare</center>\n</body>\n</html>\n", NULL);
        ok(a.kind == NGX_DR_ANSWER_RETRY && a.retryable == 1
           && strcmp(a.error, "HTTP 502 with an HTML page: 502 Bad Gateway")
              == 0,
           "%s html 502: RETRY, '%s'",
           ngx_dr_provider_format_name((ngx_dr_format_t) i), a.error);
    }

    /* huge: valid JSON just over 10 MB, as the simulator sends */
    n = MAX_LEN + 4096;
    big = malloc(n + 1);

    if (big != NULL) {
        memcpy(big, "{\"content\":[{\"text\":\"", 21);
        memset(big + 21, 'a', n - 21);
        memcpy(big + n - sizeof(tail) + 1, tail, sizeof(tail) - 1);
        big[n] = '\0';

        memset(&h, 0, sizeof(h));
        answer(ANTHROPIC, 200, big, &h);
        ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
           && strcmp(a.error, "200 with a body of 10489856 bytes, over the "
                     "limit of 10485760") == 0,
           "anthropic huge: BAD, retryable, '%s'", a.error);

        /* the same answer is fine without a limit */
        ngx_dr_provider_answer_free(&a);
        ngx_dr_provider_parse(ANTHROPIC, 200, big, n, 0, NULL, &a);
        ok(a.kind == NGX_DR_ANSWER_OK
           && a.text_len == n - 21 - (sizeof(tail) - 1),
           "anthropic huge with max_len 0: OK, all %zu bytes of text",
           a.text_len);

        answer(OPENAI, 503, big, NULL);
        ok(a.kind == NGX_DR_ANSWER_RETRY
           && strcmp(a.error, "HTTP 503 with a body of 10489856 bytes") == 0,
           "an error body over the limit is not read: '%s'", a.error);

        free(big);

    } else {
        ok(0, "malloc for the huge answer");
        ok(0, "malloc for the huge answer");
        ok(0, "malloc for the huge answer");
    }

    /* 500 and 503 in each provider's shape */
    answer(OPENAI, 500,
           "{\"error\":{\"code\":null,\"message\":\"The server had an error "
           "while processing your request. Sorry about that!\",\"param\":"
           "null,\"type\":\"server_error\"}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_RETRY && a.retryable == 1
       && strcmp(a.error, "HTTP 500 server_error: The server had an error "
                 "while processing your request. Sorry about that!") == 0,
       "openai 500: RETRY, '%s'", a.error);

    answer(ANTHROPIC, 500,
           "{\"error\":{\"message\":\"Internal server error\",\"type\":"
           "\"api_error\"},\"type\":\"error\"}", NULL);
    is_str(a.error, "HTTP 500 api_error: Internal server error",
           "anthropic 500: the error line");

    answer(GEMINI, 500,
           "{\"error\":{\"code\":500,\"message\":\"An internal error has "
           "occurred. Please retry or report in https://developers."
           "generativeai.google/guide/troubleshooting\",\"status\":"
           "\"INTERNAL\"}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_RETRY
       && starts(a.error, "HTTP 500 INTERNAL: An internal error has "),
       "gemini 500: RETRY, the status names it");

    answer(OPENAI, 503,
           "{\"error\":{\"code\":null,\"message\":\"The engine is currently "
           "overloaded, please try again later.\",\"param\":null,\"type\":"
           "\"server_error\"}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_RETRY
       && strcmp(a.error, "HTTP 503 server_error: The engine is currently "
                 "overloaded, please try again later.") == 0,
       "openai 503: RETRY");

    answer(ANTHROPIC, 529,
           "{\"error\":{\"message\":\"Overloaded\",\"type\":"
           "\"overloaded_error\"},\"type\":\"error\"}", NULL);
    ok(a.kind == NGX_DR_ANSWER_RETRY && a.retryable == 1
       && strcmp(a.error, "HTTP 529 overloaded_error: Overloaded") == 0,
       "anthropic 529 overloaded: RETRY, '%s'", a.error);

    answer(GEMINI, 503,
           "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. "
           "Please try again later.\",\"status\":\"UNAVAILABLE\"}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_RETRY
       && strcmp(a.error, "HTTP 503 UNAVAILABLE: The model is overloaded. "
                 "Please try again later.") == 0,
       "gemini 503: RETRY");

    /* timeout and reset: no HTTP answer at all */
    answer(OPENAI, 0, "Operation timed out after 60001 milliseconds with 0 "
           "bytes received", NULL);
    ok(a.kind == NGX_DR_ANSWER_RETRY && a.retryable == 1
       && strcmp(a.error, "no HTTP response: Operation timed out after "
                 "60001 milliseconds with 0 bytes received") == 0,
       "no HTTP answer (timeout): RETRY with the transport's reason");

    answer(GEMINI, 0, NULL, NULL);
    ok(a.kind == NGX_DR_ANSWER_RETRY
       && strcmp(a.error, "no HTTP response") == 0,
       "no HTTP answer (reset), no reason: RETRY");
}


static void
test_statuses(void)
{
    int          i;
    const char  *kind;

    static const struct {
        ngx_dr_format_t       f;
        long                  status;
        const char           *body;
        ngx_dr_answer_kind_t  kind;
        const char           *error;
    } cases[] = {
        { ANTHROPIC, 400,
          "{\"error\":{\"message\":\"anthropic-version: header is required\","
          "\"type\":\"invalid_request_error\"},\"type\":\"error\"}",
          NGX_DR_ANSWER_FAIL, "HTTP 400 invalid_request_error: "
          "anthropic-version: header is required" },
        { OPENAI, 401,
          "{\"error\":{\"code\":\"invalid_api_key\",\"message\":\"Incorrect "
          "API key provided: ********9xYz. You can find your API key at "
          "https://platform.openai.com/account/api-keys.\",\"param\":null,"
          "\"type\":\"invalid_request_error\"}}",
          NGX_DR_ANSWER_FAIL, "HTTP 401 invalid_api_key: Incorrect API key "
          "provided: ********9xYz. You can find your API key at https://"
          "platform.openai.com/account/api-keys." },
        { ANTHROPIC, 401,
          "{\"error\":{\"message\":\"invalid x-api-key\",\"type\":"
          "\"authentication_error\"},\"type\":\"error\"}",
          NGX_DR_ANSWER_FAIL,
          "HTTP 401 authentication_error: invalid x-api-key" },
        { GEMINI, 400,
          "{\"error\":{\"code\":400,\"details\":[{\"@type\":\"type."
          "googleapis.com/google.rpc.ErrorInfo\",\"domain\":\"googleapis."
          "com\",\"metadata\":{\"service\":\"generativelanguage.googleapis."
          "com\"},\"reason\":\"API_KEY_INVALID\"}],\"message\":\"API key not "
          "valid. Please pass a valid API key.\",\"status\":"
          "\"INVALID_ARGUMENT\"}}",
          NGX_DR_ANSWER_FAIL, "HTTP 400 INVALID_ARGUMENT/API_KEY_INVALID: "
          "API key not valid. Please pass a valid API key." },
        { GEMINI, 403,
          "{\"error\":{\"code\":403,\"message\":\"Method doesn't allow "
          "unregistered callers (callers without established identity). "
          "Please use API Key or other form of API consumer identity to "
          "call this API.\",\"status\":\"PERMISSION_DENIED\"}}",
          NGX_DR_ANSWER_FAIL, "HTTP 403 PERMISSION_DENIED: Method doesn't "
          "allow unregistered callers (callers without established "
          "identity). Please use API Key or other form of API consum..." },
        { OPENAI, 404,
          "{\"error\":{\"code\":\"model_not_found\",\"message\":\"The model "
          "`gpt-9` does not exist or you do not have access to it.\","
          "\"param\":null,\"type\":\"invalid_request_error\"}}",
          NGX_DR_ANSWER_FAIL, "HTTP 404 model_not_found: The model `gpt-9` "
          "does not exist or you do not have access to it." },
        { ANTHROPIC, 404,
          "{\"error\":{\"message\":\"model: claude-9\",\"type\":"
          "\"not_found_error\"},\"type\":\"error\"}",
          NGX_DR_ANSWER_FAIL, "HTTP 404 not_found_error: model: claude-9" },
        { GEMINI, 404,
          "{\"error\":{\"code\":404,\"message\":\"models/gemini-9 is not "
          "found for API version v1beta.\",\"status\":\"NOT_FOUND\"}}",
          NGX_DR_ANSWER_FAIL, "HTTP 404 NOT_FOUND: models/gemini-9 is not "
          "found for API version v1beta." },

        /* no credit left: a 429 that waiting does not cure */
        { OPENAI, 429,
          "{\"error\":{\"message\":\"You exceeded your current quota, please "
          "check your plan and billing details.\",\"type\":"
          "\"insufficient_quota\",\"param\":null,\"code\":"
          "\"insufficient_quota\"}}",
          NGX_DR_ANSWER_FAIL, "HTTP 429 insufficient_quota: You exceeded "
          "your current quota, please check your plan and billing "
          "details." },

        /* Mistral's 422 keeps the error at the top level */
        { OPENAI, 422,
          "{\"object\":\"error\",\"message\":\"Invalid model: mistral-"
          "huge\",\"type\":\"invalid_model\",\"param\":null,\"code\":"
          "\"1500\"}",
          NGX_DR_ANSWER_FAIL, "HTTP 422 1500: Invalid model: mistral-huge" },

        /* the old Gemini shape: the document inside an array */
        { GEMINI, 503,
          "[{\"error\":{\"code\":503,\"message\":\"Service Unavailable\","
          "\"status\":\"UNAVAILABLE\"}}]",
          NGX_DR_ANSWER_RETRY, "HTTP 503 UNAVAILABLE: Service Unavailable" },

        { OPENAI, 408, "{\"detail\":\"Request timed out\"}",
          NGX_DR_ANSWER_RETRY, "HTTP 408: Request timed out" },
        { ANTHROPIC, 409, "", NGX_DR_ANSWER_RETRY,
          "HTTP 409 with an empty body" },
        { OPENAI, 504, "upstream request timeout\n", NGX_DR_ANSWER_RETRY,
          "HTTP 504: upstream request timeout" },
        { OPENAI, 413, "{\"error\":\"Request Entity Too Large\"}",
          NGX_DR_ANSWER_FAIL, "HTTP 413: Request Entity Too Large" },
        { GEMINI, 302, "", NGX_DR_ANSWER_FAIL,
          "HTTP 302 with an empty body" },
        { OPENAI, 400, "{\"foo\":1}", NGX_DR_ANSWER_FAIL,
          "HTTP 400 with JSON that is no error document" },
        { ANTHROPIC, 403, "{\"error\":{\"type\":\"permission_error\",",
          NGX_DR_ANSWER_FAIL, "HTTP 403: {\"error\":{\"type\":"
          "\"permission_error\"," }
    };

    for (i = 0; i < (int) NELTS(cases); i++) {
        answer(cases[i].f, cases[i].status, cases[i].body, NULL);
        kind = ngx_dr_provider_kind_name(cases[i].kind);

        ok(a.kind == cases[i].kind
           && a.retryable == (cases[i].kind == NGX_DR_ANSWER_RETRY)
           && a.text == NULL && a.finish_reason[0] == '\0'
           && strcmp(a.error, cases[i].error) == 0,
           "%s %ld: %s, '%s'",
           ngx_dr_provider_format_name(cases[i].f), cases[i].status, kind,
           a.error);

        if (strcmp(a.error, cases[i].error) != 0) {
            diag("expected '%s'", cases[i].error);
        }
    }
}


static void
test_retry_after(void)
{
    ngx_dr_answer_headers_t  h;

    static const char  openai_429[] =
        "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"Rate "
        "limit reached for requests. Please try again in 2s.\",\"param\":"
        "null,\"type\":\"requests\"}}";

    static const char  anthropic_429[] =
        "{\"error\":{\"message\":\"Number of concurrent connections has "
        "exceeded your rate limit. Please try again later.\",\"type\":"
        "\"rate_limit_error\"},\"type\":\"error\"}";

    static const char  gemini_429[] =
        "{\"error\":{\"code\":429,\"details\":[{\"@type\":\"type.googleapis"
        ".com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaDimensions\""
        ":{\"location\":\"global\",\"model\":\"gemini-2.0-flash\"},\"quotaI"
        "d\":\"GenerateRequestsPerMinutePerProjectPerModel\",\"quotaMetric\""
        ":\"generativelanguage.googleapis.com/generate_content_requests\"}]"
        "},{\"@type\":\"type.googleapis.com/google.rpc.Help\",\"links\":[{"
        "\"description\":\"Learn more about Gemini API quotas\",\"url\":"
        "\"https://ai.google.dev/gemini-api/docs/rate-limits\"}]},{\"@type"
        "\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":"
        "\"1.5s\"}],\"message\":\"You exceeded your current quota, please "
        "check your plan and billing details. For more information on this "
        "error, head to: https://ai.google.dev/gemini-api/docs/rate-"
        "limits.\",\"status\":\"RESOURCE_EXHAUSTED\"}}";

    memset(&h, 0, sizeof(h));
    h.now_s = NOW;

    h.retry_after = "2";
    answer(OPENAI, 429, openai_429, &h);
    ok(a.kind == NGX_DR_ANSWER_RETRY && a.retry_after_ms == 2000
       && strcmp(a.error, "HTTP 429 rate_limit_exceeded: Rate limit reached "
                 "for requests. Please try again in 2s.") == 0,
       "openai 429, Retry-After: 2: RETRY in 2000 ms, '%s'", a.error);

    answer(ANTHROPIC, 429, anthropic_429, &h);
    ok(a.kind == NGX_DR_ANSWER_RETRY && a.retry_after_ms == 2000
       && starts(a.error, "HTTP 429 rate_limit_error: Number of concurrent"),
       "anthropic 429, Retry-After: 2: RETRY in 2000 ms");

    h.retry_after = NULL;
    answer(GEMINI, 429, gemini_429, &h);
    ok(a.kind == NGX_DR_ANSWER_RETRY && a.retry_after_ms == 1500
       && starts(a.error, "HTTP 429 RESOURCE_EXHAUSTED: You exceeded your "
                 "current quota"),
       "gemini RESOURCE_EXHAUSTED, retryDelay 1.5s: RETRY in 1500 ms");
    ok(strstr(a.error, "PerMinutePerProject") == NULL,
       "gemini 429: the CamelCase quota id is not mistaken for text");

    answer(GEMINI, 429, gemini_429, NULL);
    is_int(a.retry_after_ms, 1500, "gemini retryDelay needs no headers");

    /* IMF-fixdate, RFC 850 and asctime, 30 s after NOW */
    h.retry_after = "Sun, 29 Nov 2026 12:50:44 GMT";
    answer(OPENAI, 503, "", &h);
    is_int(a.retry_after_ms, 30000, "Retry-After as an IMF-fixdate");

    h.retry_after = "Sunday, 29-Nov-26 12:50:44 GMT";
    answer(OPENAI, 503, "", &h);
    is_int(a.retry_after_ms, 30000, "Retry-After as an RFC 850 date");

    h.retry_after = "Sun Nov 29 12:50:44 2026";
    answer(OPENAI, 503, "", &h);
    is_int(a.retry_after_ms, 30000, "Retry-After as an asctime date");

    h.retry_after = "Sun, 06 Nov 1994 08:49:37 GMT";
    answer(OPENAI, 503, "", &h);
    is_int(a.retry_after_ms, 0, "Retry-After in the past: now");

    h.retry_after = "soon";
    answer(OPENAI, 503, "", &h);
    is_int(a.retry_after_ms, -1, "Retry-After that means nothing: -1");

    h.retry_after = "999999999";
    answer(OPENAI, 503, "", &h);
    is_int(a.retry_after_ms, NGX_DR_PROVIDER_RETRY_MAX_MS,
           "Retry-After beyond a day is a day");

    /* OpenAI's own header is more precise than Retry-After */
    h.retry_after = "2";
    h.retry_after_ms = "1234.5";
    answer(OPENAI, 429, openai_429, &h);
    is_int(a.retry_after_ms, 1235, "retry-after-ms wins, rounded up");

    /* only rate-limit headers: the reset of the exhausted limit */
    memset(&h, 0, sizeof(h));
    h.now_s = NOW;
    h.remaining_requests = "0";
    h.reset_requests = "59.978s";
    h.remaining_tokens = "149000";
    h.reset_tokens = "6m0s";
    answer(OPENAI, 429, openai_429, &h);
    is_int(a.retry_after_ms, 59978,
           "openai 429 without Retry-After: x-ratelimit-reset-requests");

    h.remaining_tokens = "0";
    answer(OPENAI, 429, openai_429, &h);
    is_int(a.retry_after_ms, 360000,
           "openai 429, both limits spent: the later reset");

    answer(OPENAI, 200, "{\"choices\":[{\"message\":{\"content\":\"x\"},"
           "\"finish_reason\":\"stop\"}]}", &h);
    is_int(a.retry_after_ms, -1, "a 200 with spent limits has no delay");

    memset(&h, 0, sizeof(h));
    h.now_s = NOW;
    h.remaining_requests = "0";
    h.reset_requests = "2026-11-29T12:51:15Z";
    answer(ANTHROPIC, 429, anthropic_429, &h);
    is_int(a.retry_after_ms, 61000,
           "anthropic 429: anthropic-ratelimit-requests-reset (RFC 3339)");

    h.reset_requests = "2026-11-29T13:50:14.2+01:00";
    answer(ANTHROPIC, 429, anthropic_429, &h);
    is_int(a.retry_after_ms, 1000,
           "anthropic reset with a fraction and an offset, rounded up");
}


static void
test_unusable(void)
{
    /* provider-side filters: the same prompt is stopped again */
    answer(OPENAI, 200,
           "{\"choices\":[{\"index\":0,\"finish_reason\":\"content_filter\","
           "\"message\":{\"role\":\"assistant\",\"content\":\"Acme is\"}}],"
           "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 0 && a.text == NULL
       && strcmp(a.finish_reason, "content_filter") == 0
       && strcmp(a.error, "200 stopped by a content filter "
                 "(content_filter)") == 0
       && a.output_tokens == 3,
       "openai content_filter: BAD, not retryable, tokens still counted");

    answer(GEMINI, 200,
           "{\"candidates\":[{\"finishReason\":\"SAFETY\",\"index\":0,"
           "\"safetyRatings\":[{\"category\":\"HARM_CATEGORY_HARASSMENT\","
           "\"probability\":\"HIGH\",\"blocked\":true}]}],\"usageMetadata\":"
           "{\"promptTokenCount\":8,\"totalTokenCount\":8}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 0
       && strcmp(a.finish_reason, "content_filter") == 0
       && strcmp(a.finish_raw, "SAFETY") == 0
       && strcmp(a.error, "200 stopped by a content filter (SAFETY)") == 0,
       "gemini SAFETY: BAD, not retryable");

    answer(GEMINI, 200,
           "{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},"
           "\"usageMetadata\":{\"promptTokenCount\":8,\"totalTokenCount\":8},"
           "\"modelVersion\":\"gemini-2.0-flash\"}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 0
       && strcmp(a.finish_reason, "content_filter") == 0
       && strcmp(a.error, "200 with the prompt blocked "
                 "(PROHIBITED_CONTENT)") == 0,
       "gemini blocked prompt: BAD, not retryable, '%s'", a.error);

    answer(ANTHROPIC, 200,
           "{\"type\":\"message\",\"content\":[],\"stop_reason\":\"refusal\","
           "\"usage\":{\"input_tokens\":10,\"output_tokens\":0}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 0
       && strcmp(a.finish_reason, "content_filter") == 0
       && strcmp(a.finish_raw, "refusal") == 0,
       "anthropic stop_reason refusal: BAD, not retryable");

    /* no text */
    answer(OPENAI, 200,
           "{\"choices\":[{\"message\":{\"content\":\"  \\n \"},"
           "\"finish_reason\":\"stop\"}]}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
       && strcmp(a.error, "200 with no text") == 0,
       "openai: blank content is no text, retryable");

    answer(GEMINI, 200,
           "{\"candidates\":[{\"content\":{\"role\":\"model\"},"
           "\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{"
           "\"promptTokenCount\":8,\"thoughtsTokenCount\":64}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 0
       && strcmp(a.error, "200 with no text: the token limit was reached "
                 "first (MAX_TOKENS)") == 0
       && a.output_tokens == 64,
       "gemini 2.5: thoughts spent max_tokens, no text: not retryable");

    answer(ANTHROPIC, 200,
           "{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"x\","
           "\"input\":{}}],\"stop_reason\":\"tool_use\"}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
       && strcmp(a.finish_reason, "other") == 0,
       "anthropic: only a tool_use block is no text");

    answer(OPENAI, 200,
           "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"},"
           "\"finish_reason\":\"stop\"}]}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
       && strcmp(a.error, "200 with a NUL character in the text") == 0,
       "openai: \\u0000 in the text is BAD (PostgreSQL text refuses it)");

    answer(OPENAI, 200,
           "{\"choices\":[{\"message\":{\"content\":\"caf\\u00e9 \\ud83d"
           "\\ude00\"},\"finish_reason\":\"stop\"}]}", NULL);
    ok(a.kind == NGX_DR_ANSWER_OK
       && strcmp(a.text, "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0
       && a.text_len == 10,
       "openai: escaped UTF-8 and a surrogate pair decode to UTF-8");

    /* shapes a proxy or a confused server sends with 200 */
    answer(OPENAI, 200, "", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
       && strcmp(a.error, "200 with an empty body") == 0,
       "200 with an empty body: BAD, retryable");

    answer(GEMINI, 200,
           "<!DOCTYPE html><html><head><TITLE>\n  Just a moment...</TITLE>"
           "</head><body>checking your browser</body></html>", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
       && strcmp(a.error, "200 with an HTML page: Just a moment...") == 0,
       "200 with an HTML challenge page: BAD, retryable, '%s'", a.error);

    answer(ANTHROPIC, 200, "[1, 2, 3]", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD
       && strcmp(a.error, "200 with JSON that is not an object") == 0,
       "200 with a JSON array: BAD");

    answer(OPENAI, 200, "{\"error\":{\"message\":\"Upstream provider "
           "returned an error\",\"code\":502}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
       && strcmp(a.error, "200 with an error: 502: Upstream provider "
                 "returned an error") == 0,
       "200 with an error document (proxies do this): BAD, retryable, "
       "'%s'", a.error);

    answer(ANTHROPIC, 200, "{\"type\":\"error\",\"error\":{\"type\":"
           "\"overloaded_error\",\"message\":\"Overloaded\"}}", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && a.retryable == 1
       && strcmp(a.error, "200 with an error: overloaded_error: "
                 "Overloaded") == 0,
       "anthropic 200 with type error: BAD, retryable");

    answer(OPENAI, 200, "{\"choices\":[{\"message\":{\"content\":\"x\"},"
           "\"finish_reason\":\"stop\"}]} trailing", NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && strcmp(a.error,
           "200 with a body that is not JSON (line 1, column 73: end of "
           "file expected)") == 0,
       "200 with garbage after the JSON: '%s'", a.error);

    answer(OPENAI, 204, NULL, NULL);
    ok(a.kind == NGX_DR_ANSWER_BAD && strcmp(a.error,
           "204 with an empty body") == 0,
       "204 No Content: BAD");
}


static void
test_error_lines(void)
{
    int     i;
    char    body[8192], msg[6000];
    size_t  n;

    /* a 401 that echoes the whole key, as providers sometimes have */
    for (i = 0; i < (int) NELTS(keys); i++) {
        snprintf(body, sizeof(body),
                 "{\"error\":{\"message\":\"Incorrect API key provided: %s. "
                 "You can find your API key at https://platform.openai.com/"
                 "account/api-keys.\",\"type\":\"invalid_request_error\","
                 "\"param\":null,\"code\":\"invalid_api_key\"}}", keys[i]);
        answer(OPENAI, 401, body, NULL);
        ok(a.kind == NGX_DR_ANSWER_FAIL
           && strstr(a.error, "Incorrect API key provided: .... You can")
              != NULL
           && strstr(a.error, keys[i] + 8) == NULL,
           "401 echoing key %d: the key is replaced by '...'", i);
    }

    is_str(a.error, "HTTP 401 invalid_api_key: Incorrect API key provided: "
           ".... You can find your API key at https://platform.openai.com/"
           "account/api-keys.", "the rest of that line survives");

    snprintf(body, sizeof(body), "{\"error\":{\"code\":400,\"message\":"
             "\"API key %s not valid\",\"status\":\"INVALID_ARGUMENT\"}}",
             keys[2]);
    answer(GEMINI, 400, body, NULL);
    is_str(a.error, "HTTP 400 INVALID_ARGUMENT: API key ... not valid",
           "gemini 400 naming the key: scrubbed");

    snprintf(body, sizeof(body), "<html><title>Forbidden for %s</title>"
             "</html>", keys[1]);
    answer(ANTHROPIC, 403, body, NULL);
    is_str(a.error, "HTTP 403 with an HTML page: Forbidden for ...",
           "an HTML title naming the key: scrubbed");

    snprintf(body, sizeof(body), "bad key=%s\n", keys[3]);
    answer(OPENAI, 401, body, NULL);
    is_str(a.error, "HTTP 401: bad key=...",
           "a plain-text body naming a hex key: scrubbed");

    /* a long message: cut to 159 bytes, ending in "..." */
    memset(msg, 'x', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';

    for (i = 0; i < (int) sizeof(msg) - 1; i += 7) {
        msg[i] = ' ';
    }

    snprintf(body, sizeof(body), "{\"error\":{\"message\":\"%s\",\"type\":"
             "\"server_error\"}}", msg);
    answer(OPENAI, 500, body, NULL);
    n = strlen(a.error);
    ok(n == 159 && strcmp(a.error + n - 3, "...") == 0
       && starts(a.error, "HTTP 500 server_error: xxxxxx xxxxxx"),
       "a 6000-byte message: 159 bytes ending in '...'");

    /* a key cut by the limit must not leave its head behind */
    snprintf(body, sizeof(body), "{\"error\":{\"message\":\"%.*s %s\","
             "\"type\":\"t\"}}", 120, msg + 1, keys[4]);
    answer(OPENAI, 500, body, NULL);
    ok(strlen(a.error) <= 159 && strstr(a.error, "xai-QwEr") == NULL,
       "a key straddling the 159-byte limit leaves nothing of itself");

    answer(OPENAI, 404,
           "{\"error\":{\"code\":\"model_not_found\",\"message\":\"The model "
           "`gpt-4o-mini-2024-07-18` does not exist, nor does claude-3-5-"
           "haiku-20241022 or Llama-3.3-70B-Instruct-Turbo.\",\"param\":null,"
           "\"type\":\"invalid_request_error\"}}", NULL);
    is_str(a.error, "HTTP 404 model_not_found: The model `gpt-4o-mini-2024-"
           "07-18` does not exist, nor does claude-3-5-haiku-20241022 or "
           "Llama-3.3-70B-Instruct-Turbo.",
           "model names are not taken for keys");

    answer(ANTHROPIC, 500,
           "{\"error\":{\"message\":\"request req_011CRrVWGwTqAQGnxWrJeCvJ "
           "failed at GenerateRequestsPerMinutePerProject\",\"type\":"
           "\"api_error\"},\"type\":\"error\"}", NULL);
    is_str(a.error, "HTTP 500 api_error: request ... failed at ...",
           "random ids and CamelCase runs of 20+ are");

    answer(OPENAI, 400,
           "{\"error\":{\"message\":\"Line one.\\n\\tLine\\r\\ntwo: "
           "\\u00fcber \\u4e2d\\u6587 \\u0007bell\",\"type\":"
           "\"invalid_request_error\"}}", NULL);
    is_str(a.error, "HTTP 400 invalid_request_error: Line one. Line two: "
           "?ber ?? bell",
           "white space folded, non-ASCII as '?', controls dropped");

    ok(bad_lines == 0,
       "all %d parses returned 0 with an error line of printable ASCII, "
       "< 160 bytes, without 8 bytes of any key", parses);
}


static void
test_cost(void)
{
    is_int(ngx_dr_provider_cost_micro(1000000, 0, 0.15, 0.60), 150000,
           "cost: 1,000,000 input tokens at $0.15/M = 150000 micro-$");
    is_int(ngx_dr_provider_cost_micro(0, 1000000, 0.15, 0.60), 600000,
           "cost: 1,000,000 output tokens at $0.60/M = 600000 micro-$");
    is_int(ngx_dr_provider_cost_micro(1000, 500, 3.0, 15.0), 10500,
           "cost: 1000 in + 500 out at $3/$15 = 3000 + 7500");

    /* 13 x 0.15 + 164 x 0.60 = 1.95 + 98.4 = 100.35 */
    is_int(ngx_dr_provider_cost_micro(13, 164, 0.15, 0.60), 100,
           "cost: 100.35 micro-$ rounds to 100");

    /* halves go up; the fractions of both sides add up first */
    is_int(ngx_dr_provider_cost_micro(5, 0, 0.1, 0.0), 1,
           "cost: 0.5 micro-$ rounds up to 1");
    is_int(ngx_dr_provider_cost_micro(4, 0, 0.1, 0.0), 0,
           "cost: 0.4 micro-$ rounds down to 0");
    is_int(ngx_dr_provider_cost_micro(3, 3, 0.1, 0.1), 1,
           "cost: 0.3 + 0.3 is 0.6, one micro-$, not 0 + 0");

    /* 0.075 and 0.0375 are not exact in binary; the result is */
    is_int(ngx_dr_provider_cost_micro(1000000, 1000000, 0.075, 0.0375),
           112500, "cost: $0.075 and $0.0375 per M exactly");
    is_int(ngx_dr_provider_cost_micro(7, 0, 0.000001, 0.0), 0,
           "cost: a millionth of a dollar per M for 7 tokens");

    is_int(ngx_dr_provider_cost_micro(1000000000000L, 1000000000000L,
                                      1000000.0, 1000000.0),
           2000000000000000000LL, "cost: the largest inputs, no overflow");

    ok(ngx_dr_provider_cost_micro(-1, 10, 1.0, 1.0) == -1
       && ngx_dr_provider_cost_micro(10, -1, 1.0, 1.0) == -1,
       "cost: unknown usage (-1) has no cost: -1");
    ok(ngx_dr_provider_cost_micro(10, 10, -0.5, 1.0) == -1
       && ngx_dr_provider_cost_micro(10, 10, 1.0, NAN) == -1
       && ngx_dr_provider_cost_micro(10, 10, 2e6, 1.0) == -1
       && ngx_dr_provider_cost_micro(2000000000000L, 10, 1.0, 1.0) == -1,
       "cost: negative, NaN, absurd prices or counts: -1");
}


static void
test_backoff(void)
{
    long      d, max, lo, hi;
    unsigned  i, n, rnd, bad;

    /* SPEC section 7: 1 s doubling to 60 s; rnd at its top is the bound */
    is_int(ngx_dr_provider_backoff_ms(1, 1000, 60000, -1, 0xffffffffU), 1000,
           "backoff: after attempt 1, at most 1 s");
    is_int(ngx_dr_provider_backoff_ms(2, 1000, 60000, -1, 0xffffffffU), 2000,
           "backoff: after attempt 2, at most 2 s");
    is_int(ngx_dr_provider_backoff_ms(3, 1000, 60000, -1, 0xffffffffU), 4000,
           "backoff: after attempt 3, at most 4 s");
    is_int(ngx_dr_provider_backoff_ms(7, 1000, 60000, -1, 0xffffffffU),
           60000, "backoff: after attempt 7, 64 s capped at 60 s");
    is_int(ngx_dr_provider_backoff_ms(4000000000U, 1000, 60000, -1,
                                      0xffffffffU),
           60000, "backoff: attempt 4e9 does not overflow");
    is_int(ngx_dr_provider_backoff_ms(0, 1000, 60000, -1, 0xffffffffU), 1000,
           "backoff: attempt 0 counts as 1");
    is_int(ngx_dr_provider_backoff_ms(3, 1000, 60000, -1, 0), 0,
           "backoff: full jitter reaches 0");
    is_int(ngx_dr_provider_backoff_ms(3, 1000, 60000, -1, 0x80000000U), 2000,
           "backoff: rnd 2^31 is the middle: 2000 of 0..4000");

    /* the bounds over many random values */
    bad = 0;
    rnd = 12345;
    lo = LONG_MAX;
    hi = 0;

    for (n = 1; n <= 10; n++) {
        max = 1000L << (n - 1);
        max = max > 60000 ? 60000 : max;

        for (i = 0; i < 1000; i++) {
            rnd = rnd * 1664525U + 1013904223U;
            d = ngx_dr_provider_backoff_ms(n, 1000, 60000, -1, rnd);

            if (d < 0 || d > max) {
                bad++;
            }

            if (n == 10) {
                lo = d < lo ? d : lo;
                hi = d > hi ? d : hi;
            }
        }
    }

    ok(bad == 0, "backoff: 10,000 draws within [0, min(60 s, 2^(n-1) s)]");
    ok(lo < 6000 && hi > 54000,
       "backoff: the jitter spreads over the range (%ld..%ld)", lo, hi);

    is_int(ngx_dr_provider_backoff_ms(1, 1000, 60000, 5000, 0xffffffffU),
           5000, "backoff: a larger Retry-After wins");
    is_int(ngx_dr_provider_backoff_ms(1, 1000, 60000, 120000, 0), 60000,
           "backoff: Retry-After above the cap is capped");
    is_int(ngx_dr_provider_backoff_ms(6, 1000, 60000, 3000, 0xffffffffU),
           32000, "backoff: a smaller Retry-After does not shorten it");
    is_int(ngx_dr_provider_backoff_ms(3, 5000, 2000, -1, 0xffffffffU), 2000,
           "backoff: a cap below the base is the cap");
    is_int(ngx_dr_provider_backoff_ms(3, -5, 60000, 9000, 0xffffffffU), 0,
           "backoff: a negative base gives 0");
}


static void
test_keys(void)
{
    char  out[16], s[128];

    ngx_dr_provider_mask_key("sk-abcdefgh1234", out, sizeof(out));
    is_str(out, "****1234", "mask: the last 4 characters");
    ngx_dr_provider_mask_key("abcdefgh", out, sizeof(out));
    is_str(out, "****efgh", "mask: 8 characters show 4");
    ngx_dr_provider_mask_key("abcdefg", out, sizeof(out));
    is_str(out, "****", "mask: shorter than 8 shows nothing");
    ngx_dr_provider_mask_key(NULL, out, sizeof(out));
    is_str(out, "****", "mask: no key");
    ngx_dr_provider_mask_key(keys[0], out, 6);
    is_str(out, "****K", "mask: cut to the buffer");

    snprintf(s, sizeof(s), "bad %s here, %.10s and %.7s", keys[1],
             keys[1] + 5, keys[1]);
    ngx_dr_provider_scrub_key(s, keys[1]);
    is_str(s, "bad ... here, ... and sk-ant-",
           "scrub: the key and 8+ bytes of it go, 7 bytes stay");

    snprintf(s, sizeof(s), "k=abc;abc");
    ngx_dr_provider_scrub_key(s, "abc");
    is_str(s, "k=...;...", "scrub: a short key goes whole");
}


int
main(void)
{
    test_format();
    test_build_openai();
    test_build_anthropic();
    test_build_gemini();
    test_build_invalid();
    test_parse_openai();
    test_parse_anthropic();
    test_parse_gemini();
    test_usage();
    test_faults();
    test_statuses();
    test_retry_after();
    test_unusable();
    test_error_lines();
    test_cost();
    test_backoff();
    test_keys();

    ngx_dr_provider_answer_free(&a);

    return done_testing();
}

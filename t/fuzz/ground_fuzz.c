
/*
 * Domain Runner: libFuzzer target for ngx_dr_module/ngx_dr_ground.c.
 *
 * The input is facts, then an answer: its first line's bytes pick the
 * facts' keys, its next lines (up to an empty line or the fourth) are
 * their values, and the rest is the answer, given to three models under
 * two prompts, once as it is and once cut in half, one of the six not
 * valid.  Each text gets its
 * own heap copy of exactly its bytes, so AddressSanitizer catches a read
 * one byte too far.  Beyond not crashing:
 *
 *   - every status is unmentioned, supported or contradicted;
 *   - a value accepted by ngx_dr_ground_value() and given as the whole
 *     answer of a category, founders, products or former_names fact is
 *     supported;
 *   - no fact of category, founders, products or former_names is ever
 *     contradicted;
 *   - the same answer checked twice gives the same statuses;
 *   - a domain's counts add up: per model and per fact to the facts and
 *     the models, in total to models x facts; the score is in [0, 100]
 *     and present exactly when something was stated; the answers in
 *     reverse order give the same figures.
 *
 * Build and run (the corpus directory is scratch, never committed):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ingx_dr_module \
 *       t/fuzz/ground_fuzz.c ngx_dr_module/ngx_dr_ground.c \
 *       -o /tmp/ground_fuzz
 *   mkdir -p /tmp/fuzz-corpus
 *   /tmp/ground_fuzz -max_total_time=60 /tmp/fuzz-corpus
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_dr_ground.h"


#define check(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define FACTS    3
#define ANSWERS  6


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *copy(const uint8_t *p, size_t len);
static void check_answer(const ngx_dr_ground_fact_t *facts, size_t n,
    const char *text, size_t len);
static void check_domain(const ngx_dr_ground_fact_t *facts, size_t n,
    char *text, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                 i, n, start, len;
    const uint8_t         *nl, *p, *end, *keys;
    char                  *values[FACTS], *text;
    size_t                 lens[FACTS];
    ngx_dr_ground_fact_t   facts[FACTS];

    p = data;
    end = data + size;

    nl = memchr(p, '\n', end - p);
    if (nl == NULL) {
        return 0;
    }

    keys = p;
    n = (size_t) (nl - p) < FACTS ? (size_t) (nl - p) : FACTS;
    p = nl + 1;

    for (i = 0; i < n; i++) {
        nl = memchr(p, '\n', end - p);
        len = nl ? (size_t) (nl - p) : (size_t) (end - p);

        values[i] = copy(p, len);
        lens[i] = len;

        facts[i].key = keys[i] % NGX_DR_GROUND_KEYS;
        facts[i].value = values[i];
        facts[i].aliases = NULL;
        facts[i].n_aliases = 0;

        p = nl ? nl + 1 : end;
    }

    start = p - data;
    text = copy(data + start, size - start);

    check_answer(facts, n, text, size - start);
    check_domain(facts, n, text, size - start);

    for (i = 0; i < n; i++) {
        /* a valid value of an open key is supported by itself */
        if (facts[i].key >= NGX_DR_GROUND_CATEGORY
            && strlen(values[i]) == lens[i]
            && ngx_dr_ground_value(facts[i].key, values[i], lens[i])
               == NGX_DR_GROUND_OK)
        {
            unsigned char  st[FACTS];

            check(ngx_dr_ground_answer(facts, n, values[i], lens[i], st)
                  == NGX_DR_GROUND_OK);
            check(st[i] == NGX_DR_GROUND_SUPPORTED);
        }
    }

    for (i = 0; i < n; i++) {
        free(values[i]);
    }

    free(text);

    return 0;
}


static void
check_answer(const ngx_dr_ground_fact_t *facts, size_t n, const char *text,
    size_t len)
{
    size_t         i;
    unsigned char  a[FACTS], b[FACTS];

    check(ngx_dr_ground_answer(facts, n, text, len, a) == NGX_DR_GROUND_OK);
    check(ngx_dr_ground_answer(facts, n, text, len, b) == NGX_DR_GROUND_OK);

    for (i = 0; i < n; i++) {
        check(a[i] <= NGX_DR_GROUND_CONTRADICTED);
        check(a[i] == b[i]);

        if (facts[i].key >= NGX_DR_GROUND_CATEGORY) {
            check(a[i] != NGX_DR_GROUND_CONTRADICTED);
        }
    }
}


static void
check_domain(const ngx_dr_ground_fact_t *facts, size_t n, char *text,
    size_t len)
{
    size_t                  i, k, s, c, u;
    char                   *half;
    ngx_dr_ground_answer_t  in[ANSWERS], back[ANSWERS];
    ngx_dr_ground_result_t  res, rev;

    static const char  *models[] = { "a/x", "b/y", "c/z" };

    half = copy((const uint8_t *) text, len / 2);

    for (i = 0; i < ANSWERS; i++) {
        in[i].model = models[i % 3];
        in[i].text = (i % 2) ? half : text;
        in[i].text_len = (i % 2) ? len / 2 : len;
        in[i].valid = (i != 5);
        back[ANSWERS - 1 - i] = in[i];
    }

    check(ngx_dr_ground_domain(facts, n, in, ANSWERS, &res)
          == NGX_DR_GROUND_OK);
    check(ngx_dr_ground_domain(facts, n, back, ANSWERS, &rev)
          == NGX_DR_GROUND_OK);

    check(res.n_models <= 3);
    check(res.supported + res.contradicted + res.unmentioned
          == res.n_models * n);
    check(res.has_score == (res.supported + res.contradicted > 0));
    check(res.score >= 0 && res.score <= 100);
    check(res.strength >= 0 && res.strength <= 100);
    check(rev.n_models == res.n_models && rev.score == res.score
          && rev.strength == res.strength
          && rev.supported == res.supported
          && rev.contradicted == res.contradicted);

    for (i = 0; i < res.n_models; i++) {
        check(res.models[i].supported + res.models[i].contradicted
              + res.models[i].unmentioned == n);
        check(strcmp(res.models[i].model, rev.models[i].model) == 0);
    }

    s = c = u = 0;

    for (k = 0; k < n; k++) {
        check(res.facts[k].supported + res.facts[k].contradicted
              + res.facts[k].unmentioned == res.n_models);
        s += res.facts[k].supported;
        c += res.facts[k].contradicted;
        u += res.facts[k].unmentioned;
    }

    check(s == res.supported && c == res.contradicted
          && u == res.unmentioned);

    ngx_dr_ground_result_free(&res);
    ngx_dr_ground_result_free(&rev);
    free(half);
}


/* a NUL-ended heap copy of exactly len bytes and the NUL */

static char *
copy(const uint8_t *p, size_t len)
{
    char  *c;

    c = malloc(len + 1);
    if (c == NULL) {
        abort();
    }

    if (len) {
        memcpy(c, p, len);
    }

    c[len] = '\0';

    return c;
}

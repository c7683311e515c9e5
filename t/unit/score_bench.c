
/*
 * Domain Runner: a timing sanity check of the scoring code, not a test.
 *
 * Scores 10,000 synthetic answers of 150 words each the way the runner
 * does: per domain, 8 models x 3 prompts, with a previous run of the same
 * size, so every answer is judged, tokenized twice (consensus and drift)
 * and compared with its peers.  Prints CPU time on one core.
 *
 *   cc -std=c99 -O2 -Wall -Wextra -Werror -Ingx_dr_module \
 *       -o build/unit/score_bench t/unit/score_bench.c \
 *       ngx_dr_module/ngx_dr_score.c -lm && build/unit/score_bench
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ngx_dr_score.h"


#define BENCH_ANSWERS  10000
#define BENCH_MODELS   8
#define BENCH_PROMPTS  3
#define BENCH_WORDS    150
#define BENCH_TEXT     2048


static const char  *words[] = {
    "the", "company", "is", "a", "leading", "provider", "of", "payments",
    "software", "for", "online", "businesses", "and", "it", "has", "strong",
    "growth", "in", "europe", "america", "asia", "with", "reliable",
    "infrastructure", "but", "some", "complaints", "about", "support",
    "pricing", "developers", "use", "its", "api", "to", "accept", "cards",
    "wallets", "bank", "transfers", "not", "risky", "customers", "trusted",
    "platform", "security", "breach", "never", "reported", "market",
    "competitors", "include", "several", "large", "banks", "fintech",
    "startups", "marketing", "content", "blog", "newsletter", "social",
    "media", "technology", "cloud", "scalable", "robust", "outage", "2019",
    "revenue", "billion", "founded", "brothers", "headquarters", "dublin"
};


static unsigned long
next(unsigned long *seed)
{
    *seed = *seed * 6364136223846793005UL + 1442695040888963407UL;

    return (*seed >> 33);
}


static void
fill(char *buf, unsigned long *seed)
{
    size_t       n, i, len;
    const char  *w;

    n = (size_t) snprintf(buf, BENCH_TEXT, "Acme.com");

    for (i = 0; i < BENCH_WORDS; i++) {
        w = words[next(seed) % (sizeof(words) / sizeof(words[0]))];
        len = strlen(w);

        if (n + len + 3 >= BENCH_TEXT) {
            break;
        }

        buf[n++] = ' ';
        memcpy(buf + n, w, len);
        n += len;
    }

    buf[n++] = '.';
    buf[n] = '\0';
}


int
main(void)
{
    char                   *texts, name[2][BENCH_MODELS][16];
    double                  hist[1], secs, alone, sum;
    size_t                  i, d, per, ndomains, n;
    clock_t                 start;
    unsigned long           seed;
    ngx_dr_score_input_t    in;
    ngx_dr_score_result_t   r;
    ngx_dr_score_verdict_t  v;
    ngx_dr_score_answer_t  *cur, *prev;

    static const char  *prompts[BENCH_PROMPTS] = {
        "business_analysis", "content_strategy", "technical_assessment"
    };

    per = BENCH_MODELS * BENCH_PROMPTS;
    ndomains = (BENCH_ANSWERS + per - 1) / per;
    n = ndomains * per;

    texts = malloc(2 * n * BENCH_TEXT);
    cur = malloc(n * sizeof(ngx_dr_score_answer_t));
    prev = malloc(n * sizeof(ngx_dr_score_answer_t));

    if (texts == NULL || cur == NULL || prev == NULL) {
        fprintf(stderr, "score_bench: out of memory\n");
        return 1;
    }

    for (i = 0; i < BENCH_MODELS; i++) {
        snprintf(name[0][i], sizeof(name[0][i]), "model-%zu", i);
    }

    seed = 42;

    for (i = 0; i < 2 * n; i++) {
        fill(texts + i * BENCH_TEXT, &seed);
    }

    for (i = 0; i < n; i++) {
        cur[i].model = name[0][i % BENCH_MODELS];
        cur[i].prompt = prompts[(i / BENCH_MODELS) % BENCH_PROMPTS];
        cur[i].http_status = 200;
        cur[i].text = texts + i * BENCH_TEXT;
        cur[i].text_len = strlen(cur[i].text);

        prev[i] = cur[i];
        prev[i].text = texts + (n + i) * BENCH_TEXT;
        prev[i].text_len = strlen(prev[i].text);
    }

    hist[0] = 50.0;
    sum = 0.0;
    start = clock();

    for (d = 0; d < ndomains; d++) {
        memset(&in, 0, sizeof(in));
        in.domain = "acme.com";
        in.answers = cur + d * per;
        in.n_answers = per;
        in.previous = prev + d * per;
        in.n_previous = per;
        in.expected = per;
        in.history = hist;
        in.n_history = 1;

        if (ngx_dr_score_domain(&in, &r) != NGX_DR_SCORE_OK) {
            fprintf(stderr, "score_bench: scoring failed\n");
            return 1;
        }

        sum += r.score;
        ngx_dr_score_result_free(&r);
    }

    secs = (double) (clock() - start) / CLOCKS_PER_SEC;

    /* the per-answer verdicts alone: validity, recognition, sentiment */

    start = clock();

    for (i = 0; i < n; i++) {
        if (ngx_dr_score_answer("acme.com", 200, cur[i].text,
                                cur[i].text_len, &v)
            != NGX_DR_SCORE_OK)
        {
            fprintf(stderr, "score_bench: verdict failed\n");
            return 1;
        }

        sum += v.sentiment;
    }

    alone = (double) (clock() - start) / CLOCKS_PER_SEC;

    printf("score: %zu answers in %.3f s (%zu domains x %zu with a previous"
           " run; verdicts alone %.3f s; checksum %.3f)\n", n, secs,
           ndomains, per, alone, sum);

    free(texts);
    free(cur);
    free(prev);

    return 0;
}

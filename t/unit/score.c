
/*
 * Domain Runner: unit tests of ngx_dr_module/ngx_dr_score.c, in TAP.
 *
 * Every expected number below is worked out by hand in the comment next
 * to it, from the documented rules (docs/scoring.md): a change of a word
 * list, a threshold or a formula has to change these numbers too.
 *
 * Build and run (t/20-score-unit.t runs the binary under prove):
 *
 *   mkdir -p build/unit && cc -std=c99 -O2 -g -Wall -Wextra -Werror \
 *       -Ingx_dr_module -o build/unit/score t/unit/score.c \
 *       ngx_dr_module/ngx_dr_score.c -lm
 */


#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_dr_score.h"
#include "tap.h"


#define EPS  1e-12

#define NELTS(a)  (sizeof(a) / sizeof((a)[0]))

#define ANSWER(m, p, status, text)                                           \
    { (m), (p), (status), (text), sizeof(text) - 1 }


static double similarity(const char *a, const char *b);
static ngx_dr_score_verdict_t verdict(const char *domain, int status,
    const char *text);
static const char *trend(double t, char *buf);
static int same_double(double a, double b);
static int same_result(const ngx_dr_score_result_t *a,
    const ngx_dr_score_result_t *b, const ngx_dr_score_answer_t *ia,
    const ngx_dr_score_answer_t *ib, size_t n);
static void test_similarity(void);
static void test_validity(void);
static void test_brand(void);
static void test_sentiment(void);
static void test_domain(void);
static void test_permutation(void);
static void test_all_alerts(void);
static void test_edges(void);
static void test_volatility(void);
static void test_trend(void);
static void test_thresholds(void);


/*
 * The fixed run of section 8: domain acme.com (brand "acme"), models m1,
 * m2, m3 and prompts p1, p2, p3.  After stop words are removed:
 *
 *   p1 m1  acme leading payments company web                 5 terms
 *   p1 m2  acme payments company serves online shops         6 terms
 *   p1 m3  a refusal: not valid
 *   p2 m1  acme reaches customers email strong blog          6 terms
 *   p2 m2  acme reaches customers email newsletters blog     6 terms
 *   p2 m3  company reaches customers email blog              5 terms,
 *          valid but never says "acme": not recognized
 *   p3 m1  acme runs reliable servers data breach outages    7 terms
 *   p3 m2  acme runs servers reliable suffer outages         6 terms
 *   p3 m3  HTTP 500: not valid
 *
 * Every term occurs once, so |v|^2 is the number of terms and the dot
 * product the number of shared terms.
 */

static const ngx_dr_score_answer_t  run[] = {
    ANSWER("m1", "p1", 200,
           "Acme is a leading payments company for the web."),
    ANSWER("m2", "p1", 200,
           "Acme is a payments company that serves online shops."),
    ANSWER("m3", "p1", 200,
           "I'm not familiar with acme.com, so I cannot describe it."),
    ANSWER("m1", "p2", 200,
           "Acme reaches customers through email and a strong blog."),
    ANSWER("m2", "p2", 200,
           "Acme reaches customers through email newsletters and a blog."),
    ANSWER("m3", "p2", 200,
           "The company reaches customers through email and a blog."),
    ANSWER("m1", "p3", 200,
           "Acme runs reliable servers but had a data breach and outages."),
    ANSWER("m2", "p3", 200,
           "Acme runs servers that are not reliable and suffer outages."),
    ANSWER("m3", "p3", 500, "upstream error")
};


/*
 * The previous run.  Drift pairs are (model, prompt) answered with HTTP
 * 200 in both runs:
 *
 *   p1 m1  the same text                          sim 1        drift 0
 *   p1 m2  acme sells hardware tools builders worldwide (6 terms),
 *          shares "acme" only: sim 1/sqrt(6*6) = 1/6       drift 5/6
 *   p1 m3  acme builds payment software (4 terms) against the refusal
 *          familiar acme com cannot describe (5 terms), shares "acme":
 *          sim 1/sqrt(20)                         drift 1 - 1/sqrt(20)
 *   p2 m1  acme reaches customers phone (4 terms), shares 3 of the 6:
 *          sim 3/sqrt(24)                         drift 1 - 3/sqrt(24)
 *
 * and not pairs: p3 m2 (HTTP 500 before), p3 m3 (HTTP 500 now), p1 m4
 * (no such model now).
 */

static const ngx_dr_score_answer_t  before[] = {
    ANSWER("m1", "p1", 200,
           "Acme is a leading payments company for the web."),
    ANSWER("m2", "p1", 200,
           "Acme sells hardware tools to builders worldwide."),
    ANSWER("m3", "p1", 200, "Acme builds payment software."),
    ANSWER("m1", "p2", 200, "Acme reaches customers by phone."),
    ANSWER("m2", "p3", 500, "timeout"),
    ANSWER("m3", "p3", 200, "Acme hosts servers."),
    ANSWER("m4", "p1", 200, "Acme is a payments company.")
};


/* memory scores of the previous runs, most recent first */
static const double  history[] = { 80, 70, 75, 60, 65, 70, 90, 10 };


static double
similarity(const char *a, const char *b)
{
    double  sim;

    if (ngx_dr_score_similarity(a, strlen(a), b, strlen(b), &sim)
        != NGX_DR_SCORE_OK)
    {
        return -1.0;
    }

    return sim;
}


static ngx_dr_score_verdict_t
verdict(const char *domain, int status, const char *text)
{
    ngx_dr_score_verdict_t  v;

    memset(&v, 0, sizeof(v));
    v.reason = (ngx_dr_score_reason_t) -1;

    if (ngx_dr_score_answer(domain, status, text, strlen(text), &v)
        != NGX_DR_SCORE_OK)
    {
        v.valid = -1;
    }

    return v;
}


static const char *
trend(double t, char *buf)
{
    ngx_dr_score_trend_format(t, buf, NGX_DR_SCORE_TREND_LEN);

    return buf;
}


static void
test_similarity(void)
{
    double  ab, ba;

    is_double(similarity("Stripe builds payment APIs for developers.",
                         "Stripe builds payment APIs for developers."),
              1.0, 0.0, "identical texts: similarity exactly 1");

    is_double(similarity("Stripe builds payment APIs.",
                         "Bakeries sell fresh bread daily."),
              0.0, 0.0, "no shared term: similarity 0");

    is_double(similarity("", ""), 0.0, 0.0,
              "two empty texts: similarity 0, not 1");

    is_double(similarity("it is the one that was", "it is"), 0.0, 0.0,
              "stop words only: empty vectors, similarity 0");

    /* {stripe:1, payments:1} . {stripe:1, payments:2} = 1 + 2 = 3,
     * |a|^2 = 2, |b|^2 = 1 + 4 = 5: 3 / sqrt(10) */
    is_double(similarity("Stripe payments", "stripe PAYMENTS payments"),
              3.0 / sqrt(10.0), EPS,
              "term frequencies count, case folds: 3/sqrt(10)");

    /* U+2019 splits words like an ASCII apostrophe: both are
     * {stripe, api} once "s" (a stop word) is gone */
    is_double(similarity("Stripe\xe2\x80\x99s API", "Stripe's API"), 1.0,
              0.0, "typographic apostrophe splits like ASCII");

    /* bytes >= 0x80 are letters: "café" is one token, "caf" another */
    is_double(similarity("caf\xc3\xa9 menu", "caf menu"), 1.0 / 2.0, EPS,
              "UTF-8 word kept whole: 1/sqrt(2*2)");

    ab = similarity(run[0].text, run[1].text);
    ba = similarity(run[1].text, run[0].text);
    ok(same_double(ab, ba), "similarity is symmetric bit for bit");

    /* 5 and 6 terms sharing acme, payments, company */
    is_double(ab, 3.0 / sqrt(30.0), EPS, "run p1: m1 vs m2 = 3/sqrt(30)");

    is_int(ngx_dr_score_similarity(NULL, 3, "x", 1, &ab),
           NGX_DR_SCORE_EINVAL, "NULL text with a length: EINVAL");
}


static void
test_validity(void)
{
    ngx_dr_score_verdict_t  v;

    v = verdict("acme.com", 200, "Acme is a leading payments company "
                "for the web.");
    ok(v.valid && v.recognized && v.reason == NGX_DR_SCORE_VALID,
       "a plain answer naming the brand: valid and recognized");

    v = verdict("acme.com", 200, "I'm sorry, but I don't have information "
                "about acme.com at this time.");
    ok(!v.valid && !v.recognized && v.reason == NGX_DR_SCORE_REFUSAL,
       "\"I'm sorry, but I\" opening: a refusal, not valid");

    v = verdict("acme.com", 200, "  I\xe2\x80\x99m not familiar with the "
                "website acme.com or its owners.");
    ok(!v.valid && v.reason == NGX_DR_SCORE_REFUSAL,
       "typographic apostrophe in \"I'm not familiar with\": refusal");

    v = verdict("acme.com", 200, "As of my last update, I DO NOT HAVE ANY "
                "INFORMATION on a company called Acme.");
    ok(!v.valid && v.reason == NGX_DR_SCORE_REFUSAL,
       "refusal phrases match case-insensitively");

    /* the phrase starts at byte 200: a hedge inside a real answer */
    v = verdict("acme.com", 200, "Acme is a payments company founded in "
                "2010 that sells card processing, fraud screening and "
                "invoicing to small online shops across Europe and North "
                "America, and it competes with several bigger rivals. "
                "I don't have information on its revenue.");
    ok(v.valid && v.recognized,
       "a refusal phrase after the first 200 bytes does not count");

    v = verdict("acme.com", 200, "Acme operates as an AI-first payments "
                "company for online shops.");
    ok(v.valid, "\"as an AI-first\" is no refusal (only \"as an ai "
       "language model\" and \"as an ai, i\" are)");

    v = verdict("acme.com", 200, "Acme is a payments company.");
    ok(!v.valid && v.reason == NGX_DR_SCORE_TOO_SHORT,
       "27 characters: too short");

    /* exactly 40 characters between the blanks, then 39 */
    v = verdict("acme.com", 200, "\n  Acme sells tools and parts for "
                "plumbers.  \n");
    ok(v.valid, "40 characters after trimming: valid");

    v = verdict("acme.com", 200, "\n  Acme sells tools and parts to "
                "plumbers.  \n");
    ok(!v.valid && v.reason == NGX_DR_SCORE_TOO_SHORT,
       "39 characters after trimming: too short");

    /* 39 "é" are 78 bytes but 39 characters */
    v = verdict("acme.com", 200,
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    ok(!v.valid && v.reason == NGX_DR_SCORE_TOO_SHORT,
       "length counts UTF-8 characters, not bytes");

    v = verdict("acme.com", 500, "Acme is a leading payments company for "
                "the web.");
    ok(!v.valid && v.reason == NGX_DR_SCORE_BAD_STATUS,
       "HTTP 500: not valid");

    v = verdict("acme.com", 203, "Acme is a leading payments company for "
                "the web.");
    ok(!v.valid && v.reason == NGX_DR_SCORE_BAD_STATUS,
       "HTTP 203 (a proxy's rewrite): not valid, only 200 is");

    v = verdict("acme.com", 200, "The company is a leading payments "
                "provider for the web.");
    ok(v.valid && !v.recognized, "valid, never names the brand: "
       "not recognized");

    v = verdict("acme.com", 200, "Acmeville is a small town with a "
                "leading payments museum.");
    ok(v.valid && !v.recognized, "\"Acmeville\" is not a whole-word "
       "\"acme\"");

    v = verdict("acme.com", 200, "Founded in 1999, ACME\xe2\x80\x99s tools "
                "are sold to builders.");
    ok(v.recognized, "\"ACME’s\" names the brand");

    v = verdict("coca-cola.com", 200, "Coca Cola sells soft drinks in "
                "more than 200 countries.");
    ok(v.recognized, "\"Coca Cola\" recognizes coca-cola.com");

    v = verdict("coca-cola.com", 200, "The Coca-Cola Company sells soft "
                "drinks worldwide.");
    ok(v.recognized, "\"Coca-Cola\" recognizes coca-cola.com");

    v = verdict("www.nytimes.com", 200, "Read by millions, nytimes.com is "
                "the site of a newspaper.");
    ok(v.recognized, "naming the domain recognizes it");

    is_int(ngx_dr_score_answer("", 200, "x", 1, &v), NGX_DR_SCORE_EINVAL,
           "an empty domain: EINVAL");
}


static void
test_brand(void)
{
    int   n;
    char  buf[NGX_DR_SCORE_BRAND_LEN];

    ngx_dr_score_brand("stripe.com", buf, sizeof(buf));
    is_str(buf, "stripe", "brand of stripe.com");

    ngx_dr_score_brand("bbc.co.uk", buf, sizeof(buf));
    is_str(buf, "bbc", "brand of bbc.co.uk (two-label suffix)");

    ngx_dr_score_brand("news.bbc.co.uk", buf, sizeof(buf));
    is_str(buf, "bbc", "brand of news.bbc.co.uk");

    ngx_dr_score_brand("coca-cola.com", buf, sizeof(buf));
    is_str(buf, "coca-cola", "brand of coca-cola.com");

    ngx_dr_score_brand("www.nytimes.com", buf, sizeof(buf));
    is_str(buf, "nytimes", "brand of www.nytimes.com");

    ngx_dr_score_brand("Shop.Example.COM.AU.", buf, sizeof(buf));
    is_str(buf, "example", "upper case and a trailing dot");

    ngx_dr_score_brand("co.uk", buf, sizeof(buf));
    is_str(buf, "co", "a bare two-label suffix: its first label");

    ngx_dr_score_brand("localhost", buf, sizeof(buf));
    is_str(buf, "localhost", "a single label is its own brand");

    n = ngx_dr_score_brand("a..com", buf, sizeof(buf));
    is_int(n, -1, "an empty label is refused");

    n = ngx_dr_score_brand("stripe.com", buf, 6);
    is_int(n, -1, "a buffer too small is refused");
}


static void
test_sentiment(void)
{
    const char  *s;

    s = "Acme is a trusted and reliable leader.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), 1.0, 0.0,
              "3 positive, 0 negative: (3-0)/3 = 1");

    s = "Acme is not reliable.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), -1.0, 0.0,
              "\"not reliable\": flipped, (0-1)/1 = -1");

    s = "Acme had no scandal and never failed.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), 1.0, 0.0,
              "\"no scandal\", \"never failed\": both flipped to +, 1");

    s = "Acme is innovative but faced a lawsuit and a data breach.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), -1.0 / 3.0, EPS,
              "1 positive, 2 negative: (1-2)/3");

    s = "Acme is not very reliable.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), 1.0, 0.0,
              "negation only directly before: \"not very reliable\" is +");

    s = "Acme isn't reliable.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), 1.0, 0.0,
              "contractions are not negators (documented limit)");

    s = "ACME IS A RELIABLE, PROFITABLE COMPANY WITH ONE OUTAGE.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), 1.0 / 3.0, EPS,
              "upper case: 2 positive, 1 negative: (2-1)/3");

    s = "Acme sells tools.";
    is_double(ngx_dr_score_sentiment(s, strlen(s)), 0.0, 0.0,
              "no lexicon word: 0");
}


static int
same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof(double)) == 0;
}


static void
test_domain(void)
{
    int                    rc;
    char                   buf[NGX_DR_SCORE_TREND_LEN];
    double                 p1, p2, p3, d;
    size_t                 i;
    ngx_dr_score_input_t   in;
    ngx_dr_score_result_t  r;

    memset(&in, 0, sizeof(in));
    in.domain = "acme.com";
    in.answers = run;
    in.n_answers = NELTS(run);
    in.previous = before;
    in.n_previous = NELTS(before);
    in.expected = 9;
    in.history = history;
    in.n_history = NELTS(history);

    rc = ngx_dr_score_domain(&in, &r);
    is_int(rc, NGX_DR_SCORE_OK, "score the fixed 3 x 3 run");

    /* answers in input order: m1p1 m2p1 m3p1 m1p2 m2p2 m3p2 m1p3 m2p3
     * m3p3; valid: all but m3p1 (refusal) and m3p3 (500) */
    is_int(r.valid, 7, "7 valid answers");
    ok(r.verdicts[2].reason == NGX_DR_SCORE_REFUSAL
       && r.verdicts[8].reason == NGX_DR_SCORE_BAD_STATUS
       && r.verdicts[5].valid && !r.verdicts[5].recognized,
       "verdicts come back in input order");

    /* recognized: the 6 valid ones that say "Acme"; m3p2 does not */
    is_int(r.recognized, 6, "6 recognized answers");
    is_double(r.memory_score, 100.0 * 6.0 / 9.0, EPS,
              "memory_score = 100 x 6 / 9 = 66.67");

    /*
     * consensus:
     *   p1: m1-m2 share 3 of 5 and 6 terms      3/sqrt(30) = 0.547723
     *   p2: m1-m2 share 5 of 6 and 6            5/6        = 0.833333
     *       m1-m3 share 4 of 6 and 5            4/sqrt(30) = 0.730297
     *       m2-m3 share 4 of 6 and 5            4/sqrt(30) = 0.730297
     *       mean                                             0.764642
     *   p3: m1-m2 share 5 of 7 and 6            5/sqrt(42) = 0.771517
     *   100 x (0.547723 + 0.764642 + 0.771517) / 3         = 69.4627
     */
    p1 = 3.0 / sqrt(30.0);
    p2 = (5.0 / 6.0 + 4.0 / sqrt(30.0) + 4.0 / sqrt(30.0)) / 3.0;
    p3 = 5.0 / sqrt(42.0);
    is_double(r.ai_consensus, 100.0 * (p1 + p2 + p3) / 3.0, 1e-9,
              "ai_consensus = 69.4627");
    is_int(r.consensus_prompts, 3, "3 prompts with 2+ valid answers");

    /*
     * sentiment per valid answer (lexicon words in brackets):
     *   p1: m1 +1 [leading]; m2 0
     *   p2: m1 +1 [strong]; m2 0; m3 0
     *   p3: m1 (1-2)/3 = -1/3 [reliable; breach, outages];
     *       m2 (0-2)/2 = -1 [not reliable, outages]
     * majority share: p1 1/2, p2 2/3 (neutral), p3 2/2 (negative)
     * cohesion = 100 x (1/2 + 2/3 + 1) / 3 = 100 x 13/18 = 72.22
     */
    is_double(r.cohesion, 100.0 * 13.0 / 18.0, 1e-9, "cohesion = 72.22");

    /* model means: m1 (1 + 1 - 1/3)/3 = 5/9 positive; m2 (0 + 0 - 1)/3
     * negative; m3 only p2: 0, neutral */
    is_int(r.n_models, 3, "3 models");
    is_int(r.models_positive, 1, "modelsPositive = 1 (m1, 5/9)");
    is_int(r.models_neutral, 1, "modelsNeutral = 1 (m3, 0)");
    is_int(r.models_negative, 1, "modelsNegative = 1 (m2, -1/3)");
    is_double(r.models[0].sentiment, 5.0 / 9.0, EPS, "m1 sentiment 5/9");
    is_str(r.models[1].model, "m2", "models sorted by name");
    is_int(r.recognizing_models, 2, "m1 and m2 recognize, m3 does not");

    /* agreement: m1 is in p1 (m2), p2 (m2, m3) and p3 (m2): 4 pairs;
     * m3 only in p2 with m1 and m2, both 4/sqrt(30) */
    is_double(r.models[0].agreement,
              (3.0 / sqrt(30.0) + 5.0 / 6.0 + 4.0 / sqrt(30.0)
               + 5.0 / sqrt(42.0)) / 4.0, EPS, "m1 agreement, 4 pairs");
    is_double(r.models[2].agreement, 4.0 / sqrt(30.0), EPS,
              "m3 agreement 4/sqrt(30)");

    /* drift pairs, see before[]: 0, 5/6, 1 - 1/sqrt(20) = 0.776393,
     * 1 - 3/sqrt(24) = 0.387628; mean = 0.499339 */
    d = (0.0 + 5.0 / 6.0 + (1.0 - 1.0 / sqrt(20.0))
         + (1.0 - 3.0 / sqrt(24.0))) / 4.0;
    is_int(r.n_drift, 4, "4 drift pairs (HTTP 200 in both runs)");
    ok(r.has_previous, "there was previous data");
    is_double(r.drift[0].drift, 0.0, 0.0, "identical answer: drift 0");
    is_double(r.drift[1].drift, 5.0 / 6.0, EPS, "p1 m2 drift 5/6");
    is_str(ngx_dr_score_drift_name(r.drift[3].status), "drifting",
           "p2 m1 drift 0.3876: drifting");
    ok(r.stable == 1 && r.drifting == 1 && r.decayed == 2,
       "1 stable, 1 drifting, 2 decayed");
    is_double(r.drift_score, d, EPS, "drift_score = 0.499339");
    is_str(ngx_dr_score_drift_name(r.drift_status), "drifting",
           "domain drift status: drifting");

    /* trend = 66.67 - 80 = -13.33 points */
    ok(r.has_trend, "has a previous memory score");
    is_double(r.trend, 200.0 / 3.0 - 80.0, EPS, "trend = -13.33");
    is_str(trend(r.trend, buf), "-13.3%", "trend string -13.3%%");

    /*
     * volatility over this run and the 7 latest before it (the 8th, 10,
     * is outside the window): 200/3 80 70 75 60 65 70 90; mean 865/12;
     * deviations x12: -65 95 -25 35 -145 -85 -25 215, squares sum
     * 90200; variance 90200 / 144 / 8 = 78.2986; sd = 8.848650
     */
    is_double(r.volatility, sqrt(90200.0 / 144.0 / 8.0), 1e-9,
              "volatility = 8.84865 (window of 8)");

    /* score = 0.7 x 66.667 + 0.3 x 100 x (1 - 0.499339) = 61.6865 */
    is_double(r.score, 0.7 * 200.0 / 3.0 + 30.0 * (1.0 - d), 1e-9,
              "ranking score = 61.6865");

    /* consensus 69 >= 40: no; trend -13.3 < -3: 35; 2 of 3 recognize:
     * not fewer than half: no.  35 > 30: high */
    is_int(r.risk, 35, "reputation_risk = 35");
    is_str(ngx_dr_score_risk_name(r.risk_level), "high", "risk: high");
    is_int(r.alerts, NGX_DR_SCORE_ALERT_DECLINING_MEMORY,
           "alerts: declining_memory only");

    for (i = 0; i < 3; i++) {
        ok(r.models[i].answers == 3, "model %s has 3 answers",
           r.models[i].model);
    }

    ngx_dr_score_result_free(&r);
    ok(r.models == NULL && r.n_models == 0, "free clears the result");
}


static int
same_result(const ngx_dr_score_result_t *a, const ngx_dr_score_result_t *b,
    const ngx_dr_score_answer_t *ia, const ngx_dr_score_answer_t *ib,
    size_t n)
{
    size_t  i, j;

    if (!same_double(a->memory_score, b->memory_score)
        || !same_double(a->ai_consensus, b->ai_consensus)
        || !same_double(a->cohesion, b->cohesion)
        || !same_double(a->drift_score, b->drift_score)
        || !same_double(a->trend, b->trend)
        || !same_double(a->volatility, b->volatility)
        || !same_double(a->score, b->score)
        || a->risk != b->risk || a->alerts != b->alerts
        || a->models_positive != b->models_positive
        || a->models_neutral != b->models_neutral
        || a->models_negative != b->models_negative
        || a->n_models != b->n_models || a->n_drift != b->n_drift)
    {
        return 0;
    }

    for (i = 0; i < a->n_models; i++) {
        if (strcmp(a->models[i].model, b->models[i].model) != 0
            || !same_double(a->models[i].sentiment, b->models[i].sentiment)
            || !same_double(a->models[i].agreement, b->models[i].agreement))
        {
            return 0;
        }
    }

    for (i = 0; i < a->n_drift; i++) {
        if (strcmp(a->drift[i].model, b->drift[i].model) != 0
            || strcmp(a->drift[i].prompt, b->drift[i].prompt) != 0
            || !same_double(a->drift[i].drift, b->drift[i].drift))
        {
            return 0;
        }
    }

    /* verdicts follow their answer wherever it moved */

    for (i = 0; i < n; i++) {
        for (j = 0; j < n; j++) {
            if (ia[i].text == ib[j].text) {
                break;
            }
        }

        if (j == n || a->verdicts[i].valid != b->verdicts[j].valid
            || !same_double(a->verdicts[i].sentiment,
                            b->verdicts[j].sentiment))
        {
            return 0;
        }
    }

    return 1;
}


static void
test_permutation(void)
{
    int                    same;
    size_t                 i, k, n, m;
    ngx_dr_score_input_t   in;
    ngx_dr_score_result_t  base, r;
    ngx_dr_score_answer_t  cur[NELTS(run)], prev[NELTS(before)];

    n = NELTS(run);
    m = NELTS(before);

    memset(&in, 0, sizeof(in));
    in.domain = "acme.com";
    in.answers = run;
    in.n_answers = n;
    in.previous = before;
    in.n_previous = m;
    in.expected = 9;
    in.history = history;
    in.n_history = NELTS(history);

    if (ngx_dr_score_domain(&in, &base) != NGX_DR_SCORE_OK) {
        ok(0, "score the base order");
        return;
    }

    /* rotations by k and by 2k + 1 of both arrays, k = 1 .. 8, mirrored
     * on odd k: 8 different orders */

    same = 1;

    for (k = 1; k <= 8; k++) {
        for (i = 0; i < n; i++) {
            cur[(k % 2) ? n - 1 - (i + k) % n : (i + k) % n] = run[i];
        }

        for (i = 0; i < m; i++) {
            prev[(i + 2 * k + 1) % m] = before[i];
        }

        in.answers = cur;
        in.previous = prev;

        if (ngx_dr_score_domain(&in, &r) != NGX_DR_SCORE_OK) {
            same = 0;
            break;
        }

        if (!same_result(&r, &base, cur, run, n)) {
            diag("order %zu differs", k);
            same = 0;
        }

        ngx_dr_score_result_free(&r);
    }

    ok(same, "8 permutations of both runs: bit-identical results");

    /* a (model, prompt) twice has no order-free meaning: refused */

    cur[0] = run[0];
    cur[1] = run[0];
    in.answers = cur;
    in.n_answers = 2;
    in.previous = NULL;
    in.n_previous = 0;

    is_int(ngx_dr_score_domain(&in, &r), NGX_DR_SCORE_EINVAL,
           "a duplicate (model, prompt): EINVAL");
    ok(r.verdicts == NULL && r.models == NULL,
       "a refused input leaves nothing to free");

    ngx_dr_score_result_free(&base);
}


/*
 * bbc.co.uk, one prompt, three valid answers with no shared term:
 *   consensus 0 < 40                              +40 low_consensus
 *   only m1 names the BBC: 1 of 3, 2 x 1 < 3       +25 low_recognition
 *   memory 100 x 1/3 = 33.33, previous 90: -56.67  +35 declining_memory
 * risk 100: critical
 */

static void
test_all_alerts(void)
{
    ngx_dr_score_input_t   in;
    ngx_dr_score_result_t  r;

    static const ngx_dr_score_answer_t  answers[] = {
        ANSWER("m1", "p1", 200,
               "The BBC is the public broadcaster of Britain."),
        ANSWER("m2", "p1", 200,
               "A regional bakery selling bread, cakes and pastries."),
        ANSWER("m3", "p1", 200,
               "Unknown hobby website posting gardening photographs.")
    };
    static const double  prev[] = { 90.0 };

    memset(&in, 0, sizeof(in));
    in.domain = "bbc.co.uk";
    in.answers = answers;
    in.n_answers = NELTS(answers);
    in.expected = 3;
    in.history = prev;
    in.n_history = 1;

    if (ngx_dr_score_domain(&in, &r) != NGX_DR_SCORE_OK) {
        ok(0, "score bbc.co.uk");
        return;
    }

    is_double(r.ai_consensus, 0.0, 0.0, "no shared term: consensus 0");
    is_int(r.recognizing_models, 1, "only m1 names the BBC");
    is_int(r.risk, 100, "all three alerts: risk 40 + 35 + 25 = 100");
    is_str(ngx_dr_score_risk_name(r.risk_level), "critical",
           "risk 100: critical");
    ok(r.alerts == (NGX_DR_SCORE_ALERT_LOW_CONSENSUS
                    | NGX_DR_SCORE_ALERT_DECLINING_MEMORY
                    | NGX_DR_SCORE_ALERT_LOW_RECOGNITION),
       "alerts: low_consensus, declining_memory, low_recognition");

    /* no previous answers: drift 0, score = 0.7 x 33.33 + 30 */
    ok(!r.has_previous && r.drift_score == 0.0,
       "no previous run: no previous data, drift 0");
    is_double(r.score, 0.7 * 100.0 / 3.0 + 30.0, 1e-9,
              "score without a previous run = 0.7 x 33.33 + 30");

    /* 1 previous score: window of 2, 33.33 and 90, sd = half the gap */
    is_double(r.volatility, (90.0 - 100.0 / 3.0) / 2.0, 1e-9,
              "volatility of 2 scores = |a - b| / 2");

    ngx_dr_score_result_free(&r);
}


static void
test_edges(void)
{
    ngx_dr_score_input_t   in;
    ngx_dr_score_result_t  r;

    static const ngx_dr_score_answer_t  answers[] = {
        ANSWER("m1", "p1", 200,
               "Acme is a leading payments company for the web."),
        ANSWER("m2", "p1", 429, "")
    };

    memset(&in, 0, sizeof(in));
    in.domain = "acme.com";

    is_int(ngx_dr_score_domain(&in, &r), NGX_DR_SCORE_OK,
           "no answers at all: scored");
    ok(r.memory_score == 0.0 && r.ai_consensus == 0.0 && r.cohesion == 0.0
       && r.n_models == 0 && !r.has_trend && r.volatility == 0.0,
       "no answers: zeros, no trend, no volatility");
    ok(r.alerts == NGX_DR_SCORE_ALERT_LOW_CONSENSUS && r.risk == 40,
       "no answers: consensus 0 still raises low_consensus");
    ngx_dr_score_result_free(&r);

    in.answers = answers;
    in.n_answers = NELTS(answers);
    in.expected = 1;

    ngx_dr_score_domain(&in, &r);

    /* 1 recognized of 1 expected although 2 answers came */
    is_double(r.memory_score, 100.0, 0.0, "memory_score capped at 100");
    is_int(r.consensus_prompts, 0, "one valid answer: no consensus pair");
    is_double(r.cohesion, 100.0, 0.0, "one valid answer: cohesion 100");
    ok(r.models[1].sentiment_class == NGX_DR_SCORE_UNCLASSIFIED
       && r.models_positive + r.models_neutral + r.models_negative == 1,
       "a model with no valid answer is counted in no class");
    ngx_dr_score_result_free(&r);

    in.expected = 0;
    ngx_dr_score_domain(&in, &r);
    is_double(r.memory_score, 0.0, 0.0, "0 expected: memory_score 0");
    ngx_dr_score_result_free(&r);
}


static void
test_volatility(void)
{
    static const double  s[] = { 50, 60, 70, 80 };
    static const double  p[] = { 80, 50, 70, 60 };
    static const double  w[] = { 10, 10, 10, 10, 10, 10, 10, 10, 1000 };

    /* mean 65, squared deviations 225 25 25 225 = 500, 500 / 4 = 125 */
    is_double(ngx_dr_score_volatility(s, 4), sqrt(125.0), EPS,
              "50 60 70 80: population sd sqrt(125) = 11.1803");
    ok(same_double(ngx_dr_score_volatility(s, 4),
                   ngx_dr_score_volatility(p, 4)),
       "the order of the scores does not change a bit");
    is_double(ngx_dr_score_volatility(s, 1), 0.0, 0.0,
              "a single score: volatility 0");
    is_double(ngx_dr_score_volatility(w, 9), 0.0, 0.0,
              "only the first 8 scores count");
}


static void
test_trend(void)
{
    char  buf[NGX_DR_SCORE_TREND_LEN];

    is_str(trend(2.5, buf), "+2.5%", "2.5 -> +2.5%%");
    is_str(trend(-1.0, buf), "-1.0%", "-1.0 -> -1.0%%");
    is_str(trend(0.0, buf), "\xc2\xb1" "0.0%", "0 -> \xc2\xb1" "0.0%%");
    is_str(trend(0.04, buf), "\xc2\xb1" "0.0%", "0.04 rounds to \xc2\xb1"
           "0.0%%");
    is_str(trend(-0.04, buf), "\xc2\xb1" "0.0%", "-0.04 rounds to \xc2\xb1"
           "0.0%%, no \"-0.0%%\"");
    is_str(trend(0.05, buf), "+0.1%",
           "0.05 -> +0.1%%: halves away from zero");
    is_str(trend(-0.05, buf), "-0.1%",
           "-0.05 -> -0.1%%: halves away from zero");
    is_str(trend(1.25, buf), "+1.3%", "1.25 (exact in binary) -> +1.3%%");
    is_str(trend(0.15, buf), "+0.2%", "0.15 (0.1499.. in binary) -> +0.2%%");
    is_str(trend(100.0, buf), "+100.0%", "100 -> +100.0%%");
    is_str(trend(-9.96, buf), "-10.0%", "-9.96 -> -10.0%%");
    is_str(trend(NAN, buf), "\xc2\xb1" "0.0%", "NaN -> \xc2\xb1" "0.0%%");
    is_int(ngx_dr_score_trend_format(1.0, buf, 4), 0,
           "a buffer under NGX_DR_SCORE_TREND_LEN is refused");
}


static void
test_thresholds(void)
{
    is_int(ngx_dr_score_tables_check(), 0,
           "word tables are sorted and unique (binary search works)");

    is_str(ngx_dr_score_class_name(ngx_dr_score_class(0.1)), "neutral",
           "sentiment 0.1 is neutral");
    is_str(ngx_dr_score_class_name(ngx_dr_score_class(0.1000001)),
           "positive", "sentiment 0.1000001 is positive");
    is_str(ngx_dr_score_class_name(ngx_dr_score_class(-0.1000001)),
           "negative", "sentiment -0.1000001 is negative");

    is_str(ngx_dr_score_drift_name(ngx_dr_score_drift_status(0.2999)),
           "stable", "drift 0.2999 stable");
    is_str(ngx_dr_score_drift_name(ngx_dr_score_drift_status(0.3)),
           "drifting", "drift 0.3 drifting");
    is_str(ngx_dr_score_drift_name(ngx_dr_score_drift_status(0.7)),
           "decayed", "drift 0.7 decayed");

    is_str(ngx_dr_score_risk_name(ngx_dr_score_risk_level(15)), "low",
           "risk 15 low");
    is_str(ngx_dr_score_risk_name(ngx_dr_score_risk_level(25)), "medium",
           "risk 25 medium");
    is_str(ngx_dr_score_risk_name(ngx_dr_score_risk_level(60)), "high",
           "risk 60 high");
    is_str(ngx_dr_score_risk_name(ngx_dr_score_risk_level(65)), "critical",
           "risk 65 critical");

    is_str(ngx_dr_score_alert_name(NGX_DR_SCORE_ALERT_LOW_RECOGNITION),
           "low_recognition", "alert name low_recognition");
}


int
main(void)
{
    test_similarity();
    test_validity();
    test_brand();
    test_sentiment();
    test_domain();
    test_permutation();
    test_all_alerts();
    test_edges();
    test_volatility();
    test_trend();
    test_thresholds();

    return done_testing();
}

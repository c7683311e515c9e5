
/*
 * Domain Runner: deterministic scoring of stored answers (SPEC section 8).
 *
 * Pure C99 over libc and libm: no nginx, no libpq, no event code, no
 * global mutable state, so unit tests and fuzzers link it directly and
 * any worker may call it.  Every formula, threshold and word list is
 * described, with the reasons, in docs/scoring.md.
 */


#ifndef _NGX_DR_SCORE_H_INCLUDED_
#define _NGX_DR_SCORE_H_INCLUDED_


#include <stddef.h>


/* return codes */
#define NGX_DR_SCORE_OK                 0
#define NGX_DR_SCORE_ENOMEM            -1      /* malloc() failed */
#define NGX_DR_SCORE_EINVAL            -2      /* NULL, duplicate, NaN... */

/* thresholds; docs/scoring.md says why each has its value */
#define NGX_DR_SCORE_MIN_CHARS          40     /* code points, trimmed */
#define NGX_DR_SCORE_REFUSAL_WINDOW     200    /* bytes, trimmed text */
#define NGX_DR_SCORE_CLASS_BAND         0.1    /* neutral: |s| <= 0.1 */
#define NGX_DR_SCORE_DRIFTING_MIN       0.3
#define NGX_DR_SCORE_DECAYED_MIN        0.7
#define NGX_DR_SCORE_HISTORY            8      /* volatility window */

/* buffer sizes */
#define NGX_DR_SCORE_BRAND_LEN          64     /* a DNS label + NUL */
#define NGX_DR_SCORE_TREND_LEN          24     /* "+1000000.0%" + NUL */

/* reputation alert flags, in ngx_dr_score_result_t.alerts */
#define NGX_DR_SCORE_ALERT_LOW_CONSENSUS     0x01   /* consensus < 40 */
#define NGX_DR_SCORE_ALERT_DECLINING_MEMORY  0x02   /* trend < -3 */
#define NGX_DR_SCORE_ALERT_LOW_RECOGNITION   0x04   /* < half the models */


typedef enum {
    NGX_DR_SCORE_VALID = 0,
    NGX_DR_SCORE_BAD_STATUS,            /* HTTP status is not 200 */
    NGX_DR_SCORE_TOO_SHORT,             /* < 40 code points trimmed */
    NGX_DR_SCORE_REFUSAL                /* a refusal phrase starts early */
} ngx_dr_score_reason_t;


typedef enum {
    NGX_DR_SCORE_NEGATIVE = -1,         /* sentiment < -0.1 */
    NGX_DR_SCORE_NEUTRAL = 0,           /* -0.1 <= sentiment <= 0.1 */
    NGX_DR_SCORE_POSITIVE = 1,          /* sentiment > 0.1 */
    NGX_DR_SCORE_UNCLASSIFIED = 2       /* a model without valid answers */
} ngx_dr_score_class_t;


typedef enum {
    NGX_DR_SCORE_STABLE = 0,            /* drift < 0.3 */
    NGX_DR_SCORE_DRIFTING,              /* 0.3 <= drift < 0.7 */
    NGX_DR_SCORE_DECAYED                /* drift >= 0.7 */
} ngx_dr_score_drift_status_t;


typedef enum {
    NGX_DR_SCORE_RISK_LOW = 0,          /* risk <= 15 */
    NGX_DR_SCORE_RISK_MEDIUM,           /* risk > 15 */
    NGX_DR_SCORE_RISK_HIGH,             /* risk > 30 */
    NGX_DR_SCORE_RISK_CRITICAL          /* risk > 60 */
} ngx_dr_score_risk_level_t;


/* one stored answer; the strings are only read, never kept or freed */
typedef struct {
    const char                   *model;       /* NUL-terminated */
    const char                   *prompt;      /* NUL-terminated */
    int                           http_status;
    const char                   *text;        /* may be NULL if len 0 */
    size_t                        text_len;    /* bytes, no NUL needed */
} ngx_dr_score_answer_t;


/* the verdict on one answer */
typedef struct {
    int                           valid;
    int                           recognized;  /* implies valid */
    double                        sentiment;   /* [-1, 1], any text */
    ngx_dr_score_reason_t         reason;      /* why not valid */
} ngx_dr_score_verdict_t;


/* one model of the current run */
typedef struct {
    const char                   *model;       /* borrowed from input */
    size_t                        answers;
    size_t                        valid;
    size_t                        recognized;
    double                        sentiment;   /* mean over valid ones */
    ngx_dr_score_class_t          sentiment_class;
    double                        agreement;   /* mean similarity, 0..1 */
    size_t                        agreement_pairs;  /* 0: agreement 0 */
} ngx_dr_score_model_t;


/* one (model, prompt) answered in both runs with HTTP 200 */
typedef struct {
    const char                   *model;       /* borrowed from input */
    const char                   *prompt;      /* borrowed from input */
    double                        drift;       /* 1 - similarity */
    ngx_dr_score_drift_status_t   status;
} ngx_dr_score_drift_t;


typedef struct {
    const char                   *domain;      /* lower-case */

    /* this run's answers and the previous run's (may be empty) */
    const ngx_dr_score_answer_t  *answers;
    size_t                        n_answers;
    const ngx_dr_score_answer_t  *previous;
    size_t                        n_previous;

    size_t                        expected;    /* models x prompts */

    /*
     * memory scores of the previous runs, MOST RECENT FIRST; history[0]
     * is the previous run (trend), the first 7 feed volatility together
     * with this run; n_history == 0 means "no previous run"
     */
    const double                 *history;
    size_t                        n_history;
} ngx_dr_score_input_t;


typedef struct {
    double                        memory_score;    /* 0..100 */
    double                        ai_consensus;    /* 0..100 */
    double                        cohesion;        /* 0..100 */

    double                        drift_score;     /* mean drift, 0..1 */
    ngx_dr_score_drift_status_t   drift_status;    /* of drift_score */
    int                           has_previous;    /* drift pairs > 0 */

    double                        trend;           /* points */
    int                           has_trend;       /* n_history > 0 */

    double                        volatility;      /* population sd */
    double                        score;           /* ranking score */

    unsigned                      risk;            /* 0..100 */
    ngx_dr_score_risk_level_t     risk_level;
    unsigned                      alerts;          /* ALERT_* flags */

    size_t                        models_positive;
    size_t                        models_neutral;
    size_t                        models_negative;

    size_t                        valid;           /* answers */
    size_t                        recognized;      /* answers */
    size_t                        recognizing_models;
    size_t                        consensus_prompts;
    size_t                        cohesion_prompts;
    size_t                        stable;          /* drift pairs */
    size_t                        drifting;
    size_t                        decayed;

    /* owned by the result: release with ngx_dr_score_result_free() */
    ngx_dr_score_verdict_t       *verdicts;    /* parallel to answers */
    size_t                        n_verdicts;
    ngx_dr_score_model_t         *models;      /* sorted by name */
    size_t                        n_models;
    ngx_dr_score_drift_t         *drift;       /* by prompt, model */
    size_t                        n_drift;
} ngx_dr_score_result_t;


/*
 * Writes the brand label of a domain ("stripe" for www.stripe.com, "bbc"
 * for news.bbc.co.uk) lower-cased into buf; returns its length, or -1 if
 * the domain is empty, has an empty label or the label does not fit.
 */
int ngx_dr_score_brand(const char *domain, char *buf, size_t size);

/* NGX_DR_SCORE_OK, or NGX_DR_SCORE_EINVAL: bad domain, NULL text + len */
int ngx_dr_score_answer(const char *domain, int http_status,
    const char *text, size_t len, ngx_dr_score_verdict_t *v);

double ngx_dr_score_sentiment(const char *text, size_t len);

/* cosine of term-frequency vectors in *sim; 0 if either has no term */
int ngx_dr_score_similarity(const char *a, size_t a_len, const char *b,
    size_t b_len, double *sim);

/*
 * Scores one domain for one run into *out, which must be released with
 * ngx_dr_score_result_free() whatever the return code.  The result is
 * the same, bit for bit, for any order of in->answers and in->previous.
 */
int ngx_dr_score_domain(const ngx_dr_score_input_t *in,
    ngx_dr_score_result_t *out);
void ngx_dr_score_result_free(ngx_dr_score_result_t *out);

/* population standard deviation of scores[0 .. min(n, 8) - 1] */
double ngx_dr_score_volatility(const double *scores, size_t n);

/* "+2.5%", "-1.0%", "±0.0%" (UTF-8); returns the length, 0 if size < 24 */
size_t ngx_dr_score_trend_format(double trend, char *buf, size_t size);

ngx_dr_score_class_t ngx_dr_score_class(double sentiment);
ngx_dr_score_drift_status_t ngx_dr_score_drift_status(double drift);
ngx_dr_score_risk_level_t ngx_dr_score_risk_level(unsigned risk);

/* "positive", "stable", "critical", "low_consensus", ...; never NULL */
const char *ngx_dr_score_class_name(ngx_dr_score_class_t c);
const char *ngx_dr_score_drift_name(ngx_dr_score_drift_status_t s);
const char *ngx_dr_score_risk_name(ngx_dr_score_risk_level_t level);
const char *ngx_dr_score_alert_name(unsigned alert);

/* 0 if the built-in word tables are sorted and unique (a self-test) */
int ngx_dr_score_tables_check(void);


#endif /* _NGX_DR_SCORE_H_INCLUDED_ */

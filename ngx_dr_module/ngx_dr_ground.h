
/*
 * Domain Runner: grounding of stored answers against the facts an
 * operator gave for a domain (the reality validator).
 *
 * Pure C99 over libc: no nginx, no libpq, no event code, no global
 * mutable state, so unit tests and fuzzers link it directly.  The rules
 * (which words state a founding year or a headquarters, what counts as
 * another value of the same kind) are in docs/scoring.md.
 */


#ifndef _NGX_DR_GROUND_H_INCLUDED_
#define _NGX_DR_GROUND_H_INCLUDED_


#include <stddef.h>


/* return codes, as those of ngx_dr_score.h */
#define NGX_DR_GROUND_OK               0
#define NGX_DR_GROUND_ENOMEM          -1
#define NGX_DR_GROUND_EINVAL          -2

/* the keys of facts */
#define NGX_DR_GROUND_FOUNDED          0
#define NGX_DR_GROUND_HEADQUARTERS     1
#define NGX_DR_GROUND_CATEGORY         2
#define NGX_DR_GROUND_FOUNDERS         3
#define NGX_DR_GROUND_PRODUCTS         4
#define NGX_DR_GROUND_FORMER_NAMES     5
#define NGX_DR_GROUND_KEYS             6

/* what an answer, or a model, says of a fact */
#define NGX_DR_GROUND_UNMENTIONED      0
#define NGX_DR_GROUND_SUPPORTED        1
#define NGX_DR_GROUND_CONTRADICTED     2

/* tokens after a cue word in which its value is looked for */
#define NGX_DR_GROUND_YEAR_WINDOW      8
#define NGX_DR_GROUND_PLACE_WINDOW     6

/* limits of a fact's text */
#define NGX_DR_GROUND_VALUE_MAX        200     /* bytes */
#define NGX_DR_GROUND_TOKENS_MAX       16      /* tokens of a value */


/* one fact; the strings are only read, never kept or freed */
typedef struct {
    int                           key;         /* NGX_DR_GROUND_* key */
    const char                   *value;       /* NUL-terminated */
    const char *const            *aliases;     /* NUL-terminated each */
    size_t                        n_aliases;
} ngx_dr_ground_fact_t;


/* one stored answer; valid: the scorer's verdict (ngx_dr_score.c) */
typedef struct {
    const char                   *model;       /* NUL-terminated */
    const char                   *text;        /* may be NULL if len 0 */
    size_t                        text_len;
    int                           valid;
} ngx_dr_ground_answer_t;


/* (model, fact) pairs of one model */
typedef struct {
    const char                   *model;       /* borrowed from input */
    size_t                        supported;
    size_t                        contradicted;
    size_t                        unmentioned;
} ngx_dr_ground_model_t;


/* models that support, contradict or leave out one fact */
typedef struct {
    size_t                        supported;
    size_t                        contradicted;
    size_t                        unmentioned;
} ngx_dr_ground_count_t;


typedef struct {
    size_t                        n_models;    /* with a valid answer */
    ngx_dr_ground_model_t        *models;      /* sorted by name */
    ngx_dr_ground_count_t        *facts;       /* in the facts' order */
    size_t                        supported;   /* (model, fact) pairs */
    size_t                        contradicted;
    size_t                        unmentioned;
    int                           has_score;   /* something was stated */
    double                        score;       /* 100 s / (s + c) */
    double                        strength;    /* 100 (s + c) / pairs */
} ngx_dr_ground_result_t;


/* the key named by name (len bytes), or -1 */
int ngx_dr_ground_key(const char *name, size_t len);
const char *ngx_dr_ground_key_name(int key);
const char *ngx_dr_ground_status_name(int status);
const char *ngx_dr_ground_fact_status(const ngx_dr_ground_count_t *c);

/* whether value is acceptable for key: NGX_DR_GROUND_OK or EINVAL */
int ngx_dr_ground_value(int key, const char *value, size_t len);

/* what one answer says of each fact: status[i] for facts[i] */
int ngx_dr_ground_answer(const ngx_dr_ground_fact_t *facts, size_t n,
    const char *text, size_t len, unsigned char *status);

/*
 * The grounding of a domain's answers of one run: each model with a valid
 * answer against every fact; answers not valid are left out.
 */
int ngx_dr_ground_domain(const ngx_dr_ground_fact_t *facts, size_t n_facts,
    const ngx_dr_ground_answer_t *answers, size_t n_answers,
    ngx_dr_ground_result_t *res);
void ngx_dr_ground_result_free(ngx_dr_ground_result_t *res);


#endif /* _NGX_DR_GROUND_H_INCLUDED_ */

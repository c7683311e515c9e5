
/*
 * Domain Runner: token-bucket arithmetic, pure (no nginx symbol).
 *
 * Integers only: a token is worth "period" units (the period of the rate
 * in milliseconds) and every millisecond adds "rate" units, so that 1
 * request a day and 100,000 a second are both exact, with no rounding
 * drift.  A bucket may go below zero when tokens are taken ahead (a
 * reservation); it never holds more than burst tokens.  Clocks are
 * milliseconds of a monotonic clock; one read earlier than the bucket's
 * last (another worker's) adds nothing and is not taken as the new last.
 */


#ifndef _NGX_DR_BUCKET_H_INCLUDED_
#define _NGX_DR_BUCKET_H_INCLUDED_


#include <stdint.h>


/* burst x period and the deepest debt stay below 2^62 each */
#define NGX_DR_BUCKET_MAX_RATE    1000000000ULL
#define NGX_DR_BUCKET_MAX_PERIOD  (366ULL * 86400 * 1000)
#define NGX_DR_BUCKET_MAX_BURST   100000000ULL
#define NGX_DR_BUCKET_FLOOR       (INT64_C(1) << 62)


typedef struct {
    int64_t      units;        /* tokens x period; may be < 0 */
    uint64_t     last;         /* ms: when units were last refilled */
    int64_t      cap;          /* burst x period */
    uint64_t     period;       /* ms: a token's units */
    uint64_t     rate;         /* units added each ms */
} ngx_dr_bucket_t;


/* a full bucket of burst tokens, refilled at rate tokens per period */
void ngx_dr_bucket_init(ngx_dr_bucket_t *b, uint64_t rate, uint64_t period,
    uint64_t burst, uint64_t now);

/* takes a (new) rate and adds what the time since the last refill gave */
void ngx_dr_bucket_refill(ngx_dr_bucket_t *b, uint64_t rate,
    uint64_t period, uint64_t burst, uint64_t now);

/* the units the bucket would hold now, without changing it */
int64_t ngx_dr_bucket_level(const ngx_dr_bucket_t *b, uint64_t now);

/* ms until cost tokens are there (0: now); the bucket is refilled */
uint64_t ngx_dr_bucket_wait(const ngx_dr_bucket_t *b, uint64_t cost);

/* takes cost tokens, also below zero; no check */
void ngx_dr_bucket_take(ngx_dr_bucket_t *b, uint64_t cost);

/* takes back what another node took: at most "limit" units, or all */
void ngx_dr_bucket_debit(ngx_dr_bucket_t *b, uint64_t tokens,
    int64_t limit);

/* whole tokens in a refilled bucket (0 when below one) */
uint64_t ngx_dr_bucket_tokens(const ngx_dr_bucket_t *b);

/* whole seconds until the bucket is full, and until cost tokens (>= 1) */
uint64_t ngx_dr_bucket_full_in(const ngx_dr_bucket_t *b);
uint64_t ngx_dr_bucket_retry_in(const ngx_dr_bucket_t *b, uint64_t cost);


#endif /* _NGX_DR_BUCKET_H_INCLUDED_ */

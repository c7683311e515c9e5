
/*
 * Domain Runner: token-bucket arithmetic, pure (no nginx symbol).
 */


#include "ngx_dr_bucket.h"


static uint64_t ngx_dr_bucket_ceil(uint64_t n, uint64_t d);


void
ngx_dr_bucket_init(ngx_dr_bucket_t *b, uint64_t rate, uint64_t period,
    uint64_t burst, uint64_t now)
{
    b->rate = rate ? rate : 1;
    b->period = period ? period : 1;
    b->cap = (int64_t) (burst * b->period);
    b->units = b->cap;
    b->last = now;
}


void
ngx_dr_bucket_refill(ngx_dr_bucket_t *b, uint64_t rate, uint64_t period,
    uint64_t burst, uint64_t now)
{
    b->units = ngx_dr_bucket_level(b, now);

    if ((int64_t) (now - b->last) > 0) {
        b->last = now;
    }

    /* a tier may change on reload: the tokens held stay tokens */

    period = period ? period : 1;

    if (period != b->period) {
        b->units = (b->units / (int64_t) b->period) * (int64_t) period;
    }

    b->rate = rate ? rate : 1;
    b->period = period;
    b->cap = (int64_t) (burst * period);

    if (b->units > b->cap) {
        b->units = b->cap;
    }
}


int64_t
ngx_dr_bucket_level(const ngx_dr_bucket_t *b, uint64_t now)
{
    int64_t  elapsed, units;

    units = b->units;
    elapsed = (int64_t) (now - b->last);

    if (elapsed <= 0 || units >= b->cap) {
        return units > b->cap ? b->cap : units;
    }

    /* compared before multiplying: a long idle time cannot overflow */

    if ((uint64_t) elapsed > (uint64_t) (b->cap - units) / b->rate) {
        return b->cap;
    }

    units += elapsed * (int64_t) b->rate;

    return units > b->cap ? b->cap : units;
}


uint64_t
ngx_dr_bucket_wait(const ngx_dr_bucket_t *b, uint64_t cost)
{
    int64_t  need;

    need = (int64_t) (cost * b->period);

    if (b->units >= need) {
        return 0;
    }

    return ngx_dr_bucket_ceil((uint64_t) (need - b->units), b->rate);
}


void
ngx_dr_bucket_take(ngx_dr_bucket_t *b, uint64_t cost)
{
    b->units -= (int64_t) (cost * b->period);
}


void
ngx_dr_bucket_debit(ngx_dr_bucket_t *b, uint64_t tokens, int64_t limit)
{
    int64_t  units;

    /* more tokens than any bucket holds: as many as there can be */
    units = (tokens > (uint64_t) NGX_DR_BUCKET_FLOOR / b->period)
            ? NGX_DR_BUCKET_FLOOR : (int64_t) (tokens * b->period);

    if (limit >= 0 && units > limit) {
        units = limit;
    }

    /* a debt as deep as the floor is as good as endless: no overflow */
    if (b->units - units < -NGX_DR_BUCKET_FLOOR) {
        b->units = -NGX_DR_BUCKET_FLOOR;
        return;
    }

    b->units -= units;
}


uint64_t
ngx_dr_bucket_tokens(const ngx_dr_bucket_t *b)
{
    return b->units > 0 ? (uint64_t) b->units / b->period : 0;
}


uint64_t
ngx_dr_bucket_full_in(const ngx_dr_bucket_t *b)
{
    if (b->units >= b->cap) {
        return 0;
    }

    return ngx_dr_bucket_ceil((uint64_t) (b->cap - b->units),
                              b->rate * 1000);
}


uint64_t
ngx_dr_bucket_retry_in(const ngx_dr_bucket_t *b, uint64_t cost)
{
    int64_t   need;
    uint64_t  s;

    need = (int64_t) (cost * b->period);

    if (b->units >= need) {
        return 1;
    }

    s = ngx_dr_bucket_ceil((uint64_t) (need - b->units), b->rate * 1000);

    return s ? s : 1;
}


static uint64_t
ngx_dr_bucket_ceil(uint64_t n, uint64_t d)
{
    return n / d + (n % d != 0);
}

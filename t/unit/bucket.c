
/*
 * Domain Runner: unit tests of the token-bucket arithmetic
 * (ngx_dr_bucket.c): exact rates from one a day to 100,000 a second,
 * costs above one, the largest burst, a clock that goes back, a long
 * idle time, debts and what another node took.
 */


#include <stdint.h>

#include "ngx_dr_bucket.h"
#include "tap.h"


#define DAY_MS     (86400ULL * 1000)
#define START      1000000ULL


/* takes one token at a time until refused; the tokens taken */

static uint64_t
drain(ngx_dr_bucket_t *b, uint64_t now)
{
    uint64_t  n;

    ngx_dr_bucket_refill(b, b->rate, b->period,
                         (uint64_t) b->cap / b->period, now);

    for (n = 0; ngx_dr_bucket_wait(b, 1) == 0; n++) {
        ngx_dr_bucket_take(b, 1);
    }

    return n;
}


static void
test_one_a_day(void)
{
    ngx_dr_bucket_t  b;

    ngx_dr_bucket_init(&b, 1, DAY_MS, 1, START);

    is_int(drain(&b, START), 1, "1/day: the one token of a full bucket");
    is_int(ngx_dr_bucket_wait(&b, 1), DAY_MS,
           "1/day: the next token in exactly one day");
    is_int(ngx_dr_bucket_retry_in(&b, 1), 86400,
           "1/day: Retry-After of 86400 s");

    is_int(drain(&b, START + DAY_MS - 1), 0,
           "1/day: none a millisecond before the day is over");
    is_int(ngx_dr_bucket_wait(&b, 1), 1, "1/day: then 1 ms to wait");
    is_int(drain(&b, START + DAY_MS), 1, "1/day: one at the day's end");
    is_int(drain(&b, START + 10 * DAY_MS), 1,
           "1/day: ten idle days still give one (burst 1)");
}


static void
test_100k_a_second(void)
{
    uint64_t         t, total;
    ngx_dr_bucket_t  b;

    ngx_dr_bucket_init(&b, 100000, 1000, 100, START);

    is_int(drain(&b, START), 100, "100,000/s: the burst of 100 at once");

    /* 10 s taken ms by ms: exactly 100 a ms, 1,000,000 in all */

    total = 0;

    for (t = 1; t <= 10000; t++) {
        total += drain(&b, START + t);
    }

    is_int(total, 1000000, "100,000/s: exactly 1,000,000 in 10 s");
    is_int(ngx_dr_bucket_tokens(&b), 0, "100,000/s: nothing left over");
}


static void
test_cost(void)
{
    ngx_dr_bucket_t  b;

    ngx_dr_bucket_init(&b, 60, 60000, 10, START);

    is_int(ngx_dr_bucket_wait(&b, 10), 0, "cost 10 of a full bucket of 10");
    ngx_dr_bucket_take(&b, 7);
    is_int(ngx_dr_bucket_tokens(&b), 3, "cost 7 leaves 3");
    is_int(ngx_dr_bucket_wait(&b, 5), 2000,
           "cost 5 with 3 left waits for 2 tokens: 2 s at 60/m");
    is_int(ngx_dr_bucket_retry_in(&b, 5), 2, "Retry-After 2 s");
    ok(ngx_dr_bucket_wait(&b, 11) > 0, "a cost above the burst never fits");

    ngx_dr_bucket_take(&b, 5);
    ok(b.units < 0, "a reservation goes below zero");
    is_int(ngx_dr_bucket_tokens(&b), 0, "no tokens while in debt");
    is_int(ngx_dr_bucket_wait(&b, 1), 3000,
           "in debt of 2: a token in 3 s at 60/m");
    is_int(ngx_dr_bucket_full_in(&b), 12, "full again in 12 s");
}


static void
test_largest_burst(void)
{
    uint64_t         burst, period;
    ngx_dr_bucket_t  b;

    burst = NGX_DR_BUCKET_MAX_BURST;
    period = NGX_DR_BUCKET_MAX_PERIOD;

    ngx_dr_bucket_init(&b, NGX_DR_BUCKET_MAX_RATE, period, burst, START);

    ok(b.cap > 0 && (uint64_t) b.cap == burst * period,
       "the largest burst and period: cap %lld has not overflowed",
       (long long) b.cap);
    is_int(ngx_dr_bucket_tokens(&b), burst, "it holds the whole burst");

    ngx_dr_bucket_take(&b, burst);
    ngx_dr_bucket_take(&b, burst);
    ok(b.units == -b.cap, "two bursts taken: a debt of one burst");

    ngx_dr_bucket_refill(&b, b.rate, period, burst, START + 100 * DAY_MS);
    is_int(ngx_dr_bucket_tokens(&b), burst,
           "after 100 days the largest bucket is full, not wrapped");

    ngx_dr_bucket_debit(&b, UINT64_MAX, -1);
    ngx_dr_bucket_debit(&b, UINT64_MAX, -1);
    ok(b.units == -NGX_DR_BUCKET_FLOOR,
       "debits of 2^64 tokens stop at the floor instead of wrapping");
    ngx_dr_bucket_refill(&b, b.rate, period, burst, START + 300 * DAY_MS);
    ok(b.units <= b.cap && b.units > -NGX_DR_BUCKET_FLOOR,
       "and refills from there without overflow");
}


static void
test_clock_back(void)
{
    ngx_dr_bucket_t  b;

    ngx_dr_bucket_init(&b, 10, 1000, 5, START);
    drain(&b, START + 5000);

    /* another worker read the clock a little earlier */

    ngx_dr_bucket_refill(&b, 10, 1000, 5, START + 4000);
    is_int(ngx_dr_bucket_tokens(&b), 0, "a clock read earlier adds nothing");
    is_int(b.last, START + 5000, "and is not taken as the last refill");

    ngx_dr_bucket_refill(&b, 10, 1000, 5, START + 5100);
    is_int(ngx_dr_bucket_tokens(&b), 1,
           "100 ms later than the last refill: one token at 10/s");
    is_int(ngx_dr_bucket_level(&b, START + 1), b.units,
           "the level at an earlier time is the level now");
}


static void
test_idle(void)
{
    ngx_dr_bucket_t  b;

    ngx_dr_bucket_init(&b, 10, 60000, 5, START);
    drain(&b, START);

    is_int(ngx_dr_bucket_level(&b, START + 3 * 6000),
           3 * 60000, "three tokens after 18 s at 10/m");
    is_int(ngx_dr_bucket_level(&b, START + 365 * DAY_MS), b.cap,
           "a year idle: full, not more");
    is_int(drain(&b, START + 365 * DAY_MS), 5, "and the burst is 5");
    is_int(ngx_dr_bucket_full_in(&b), 30, "empty: full again in 30 s");
}


static void
test_new_rate(void)
{
    ngx_dr_bucket_t  b;

    ngx_dr_bucket_init(&b, 10, 60000, 5, START);
    ngx_dr_bucket_take(&b, 2);

    /* a reload made the tier 100 a second with a burst of 20 */

    ngx_dr_bucket_refill(&b, 100, 1000, 20, START);
    is_int(ngx_dr_bucket_tokens(&b), 3,
           "a new period keeps the tokens held (3)");
    is_int(drain(&b, START + 100), 13, "then 100/s adds 10 in 100 ms");

    ngx_dr_bucket_refill(&b, 100, 1000, 2, START + 10000);
    is_int(ngx_dr_bucket_tokens(&b), 2, "a smaller burst caps the bucket");
}


static void
test_debit(void)
{
    ngx_dr_bucket_t  b;

    ngx_dr_bucket_init(&b, 10, 60000, 5, START);

    ngx_dr_bucket_debit(&b, 3, -1);
    is_int(ngx_dr_bucket_tokens(&b), 2, "3 taken by another node: 2 left");

    ngx_dr_bucket_debit(&b, 100, b.cap);
    is_int(b.units, 2 * 60000 - b.cap,
           "a limited debit takes at most one burst");

    ngx_dr_bucket_init(&b, 10, 60000, 5, START);
    ngx_dr_bucket_debit(&b, 8, -1);
    is_int(b.units, -3 * 60000, "an unlimited one leaves a debt of 3");
    is_int(ngx_dr_bucket_wait(&b, 1), 24000,
           "which waits 24 s for a token at 10/m");
}


int
main(void)
{
    test_one_a_day();
    test_100k_a_second();
    test_cost();
    test_largest_burst();
    test_clock_back();
    test_idle();
    test_new_rate();
    test_debit();

    return done_testing();
}


/*
 * Domain Runner: the circuit breaker of each provider.
 *
 * It lives in the shared counters, so that every worker sees it: closed;
 * open after NGX_DR_BREAKER_FAILURES failures in a row, when nothing is
 * sent for NGX_DR_BREAKER_OPEN_S; then half-open: one call goes, and its
 * outcome closes or opens the breaker again.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_dr_breaker.h"
#include "ngx_dr_counters.h"


static ngx_dr_counters_t *ngx_dr_breaker_counters(ngx_dr_provider_t *pr);


static const char  *ngx_dr_breaker_names[] = {
    "closed",
    "open",
    "half_open"
};


ngx_uint_t
ngx_dr_breaker_allow(ngx_dr_provider_t *pr)
{
    ngx_uint_t          i;
    ngx_dr_counters_t  *m;

    m = ngx_dr_breaker_counters(pr);
    if (m == NULL) {
        return 1;
    }

    i = pr->index;

    switch (m->breaker[i]) {

    case NGX_DR_BREAKER_CLOSED:
        return 1;

    case NGX_DR_BREAKER_OPEN:
        if (ngx_time() - (time_t) m->breaker_opened[i]
            < NGX_DR_BREAKER_OPEN_S)
        {
            return 0;
        }

        /* the one probing call */
        return ngx_atomic_cmp_set(&m->breaker[i], NGX_DR_BREAKER_OPEN,
                                  NGX_DR_BREAKER_HALF_OPEN);

    default:
        return 0;
    }
}


/* ok: the provider answered, whatever it answered */

void
ngx_dr_breaker_result(ngx_dr_provider_t *pr, ngx_uint_t ok, ngx_log_t *log)
{
    ngx_uint_t          i;
    ngx_atomic_uint_t   failures;
    ngx_dr_counters_t  *m;

    m = ngx_dr_breaker_counters(pr);
    if (m == NULL) {
        return;
    }

    i = pr->index;

    if (ok) {
        m->breaker_failures[i] = 0;

        if (m->breaker[i] != NGX_DR_BREAKER_CLOSED) {
            m->breaker[i] = NGX_DR_BREAKER_CLOSED;
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "provider %V answers again: breaker closed",
                          &pr->name);
        }

        return;
    }

    failures = ngx_atomic_fetch_add(&m->breaker_failures[i], 1) + 1;

    if (m->breaker[i] == NGX_DR_BREAKER_HALF_OPEN
        || (m->breaker[i] == NGX_DR_BREAKER_CLOSED
            && failures >= NGX_DR_BREAKER_FAILURES))
    {
        m->breaker_opened[i] = ngx_time();
        m->breaker[i] = NGX_DR_BREAKER_OPEN;

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "provider %V failed %uA times in a row: breaker "
                      "open for %d s", &pr->name, failures,
                      NGX_DR_BREAKER_OPEN_S);
    }
}


void
ngx_dr_breaker_state(ngx_dr_provider_t *pr, ngx_dr_breaker_state_t *st)
{
    time_t              left;
    ngx_dr_counters_t  *m;

    ngx_memzero(st, sizeof(ngx_dr_breaker_state_t));
    st->state = NGX_DR_BREAKER_CLOSED;

    m = ngx_dr_breaker_counters(pr);
    if (m == NULL) {
        return;
    }

    st->state = m->breaker[pr->index];
    st->failures = m->breaker_failures[pr->index];

    if (st->state == NGX_DR_BREAKER_OPEN) {
        left = (time_t) m->breaker_opened[pr->index] + NGX_DR_BREAKER_OPEN_S
               - ngx_time();
        st->half_open_in = ngx_max(left, 0);

        /*
         * its time is up: the next call goes through, whether or not one
         * has been tried yet, so it is reported half-open, not open
         */
        if (left <= 0) {
            st->state = NGX_DR_BREAKER_HALF_OPEN;
        }
    }
}


const char *
ngx_dr_breaker_state_name(ngx_uint_t state)
{
    if (state >= sizeof(ngx_dr_breaker_names) / sizeof(char *)) {
        state = NGX_DR_BREAKER_CLOSED;
    }

    return ngx_dr_breaker_names[state];
}


/* NULL without shared counters or room in them: the breaker stays closed */

static ngx_dr_counters_t *
ngx_dr_breaker_counters(ngx_dr_provider_t *pr)
{
    if (ngx_dr_counters == NULL || pr->index >= NGX_DR_M_PROVIDERS) {
        return NULL;
    }

    return ngx_dr_counters;
}

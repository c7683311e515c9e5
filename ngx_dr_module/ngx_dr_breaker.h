
/*
 * Domain Runner: the circuit breaker of each provider.
 */


#ifndef _NGX_DR_BREAKER_H_INCLUDED_
#define _NGX_DR_BREAKER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_dr_llm.h"


/* five failures in a row open a provider's breaker for 30 s */
#define NGX_DR_BREAKER_FAILURES   5
#define NGX_DR_BREAKER_OPEN_S     30


/* a breaker as GET /admin/providers shows it */
typedef struct {
    ngx_uint_t                state;        /* NGX_DR_BREAKER_CLOSED, ... */
    ngx_uint_t                failures;     /* in a row */
    time_t                    half_open_in; /* s, while open */
} ngx_dr_breaker_state_t;


ngx_uint_t ngx_dr_breaker_allow(ngx_dr_provider_t *pr);
void ngx_dr_breaker_result(ngx_dr_provider_t *pr, ngx_uint_t ok,
    ngx_log_t *log);
void ngx_dr_breaker_state(ngx_dr_provider_t *pr, ngx_dr_breaker_state_t *st);
const char *ngx_dr_breaker_state_name(ngx_uint_t state);


#endif /* _NGX_DR_BREAKER_H_INCLUDED_ */

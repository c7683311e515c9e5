
/*
 * Domain Runner: spend budgets: a call's reservation before it leaves,
 * its settlement when it returns, and the budgets' figures for the scrape.
 */


#ifndef _NGX_DR_BUDGET_H_INCLUDED_
#define _NGX_DR_BUDGET_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_dr_pg.h"
#include "ngx_dr_provider.h"


/* where a call's reservation is */
#define NGX_DR_BUDGET_NONE         0   /* not asked for yet */
#define NGX_DR_BUDGET_ASKING       1
#define NGX_DR_BUDGET_HELD         2   /* the call may go */
#define NGX_DR_BUDGET_REFUSED      3   /* a budget has no room for it */
#define NGX_DR_BUDGET_UNAVAILABLE  4   /* the database could not say */

/* the periods, as ngx_dr_budget_periods names them */
#define NGX_DR_BUDGET_HOUR         0
#define NGX_DR_BUDGET_DAY          1
#define NGX_DR_BUDGET_MONTH        2

/* the longest scope: "provider:" and a provider's name */
#define NGX_DR_BUDGET_SCOPE_LEN    73

/* the most a budget may be, in dollars */
#define NGX_DR_BUDGET_USD_MAX      1000000000


/* a default of the configuration: dr_budget */
typedef struct {
    ngx_str_t                 scope;
    ngx_uint_t                period;
    int64_t                   usd;          /* micro-dollars */
} ngx_dr_budget_t;


typedef struct ngx_dr_budget_hold_s  ngx_dr_budget_hold_t;

typedef void (*ngx_dr_budget_done_pt)(ngx_dr_budget_hold_t *hold);


/* one call's reservation */
struct ngx_dr_budget_hold_s {
    /* in */
    ngx_pool_t               *pool;         /* lives as long as the call */
    ngx_log_t                *log;
    ngx_str_t                *provider;
    u_char                   *run_id;       /* NUL ended; NULL: none */
    int64_t                   amount;       /* micro-dollars */
    ngx_dr_budget_done_pt     done;
    void                     *data;

    /* out, valid in done() */
    ngx_uint_t                state;
    char                      error[NGX_DR_PROVIDER_ERROR_LEN];

    /* private */
    int64_t                   id;           /* 0: nothing is held */
    ngx_dr_pg_query_t        *query;
};


extern ngx_str_t  ngx_dr_budget_periods[];


char *ngx_dr_budget(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_dr_budget_init_process(ngx_cycle_t *cycle);

ngx_int_t ngx_dr_budget_scope(u_char *s, size_t len);
ngx_int_t ngx_dr_budget_period(u_char *s, size_t len);
ngx_uint_t ngx_dr_budget_covers(ngx_str_t *scope, ngx_str_t *provider);
void ngx_dr_budget_defaults(const char **params);

/* done() is called once, perhaps before ngx_dr_budget_reserve() returns */
void ngx_dr_budget_reserve(ngx_dr_budget_hold_t *hold);

/* the call ended and cost this much (-1: as much as it held) */
void ngx_dr_budget_settle(ngx_dr_budget_hold_t *hold, int64_t cost);

/* the call goes away: sent (its cost unknown) or not */
void ngx_dr_budget_release(ngx_dr_budget_hold_t *hold, ngx_uint_t sent);


#endif /* _NGX_DR_BUDGET_H_INCLUDED_ */


/*
 * Domain Runner: the scores of stored runs, written and told.
 */


#ifndef _NGX_DR_RESCORE_H_INCLUDED_
#define _NGX_DR_RESCORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * The outcome of a check: NGX_OK scores written, NGX_DECLINED jobs left,
 * NGX_ABORT the answers could not be scored, NGX_ERROR.
 */
typedef void (*ngx_dr_rescore_done_pt)(void *data, ngx_int_t rc);


ngx_int_t ngx_dr_scores_init_process(ngx_cycle_t *cycle);

/*
 * The scores of a (run, domain) whose jobs have all ended; handler NULL:
 * the runner's check after a job's end, asked again while the database
 * cannot answer.
 */
ngx_int_t ngx_dr_rescore_check(u_char *run, u_char *domain, ngx_log_t *log,
    ngx_dr_rescore_done_pt handler, void *data);

/* POST /admin/rescore; domains: a PostgreSQL text[] literal, or NULL */
ngx_int_t ngx_dr_rescore_handler(ngx_http_request_t *r, const char *domains);

/* the same, for no client: the domains' facts changed */
ngx_int_t ngx_dr_rescore_domains(const char *domains);


#endif /* _NGX_DR_RESCORE_H_INCLUDED_ */


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
/*
 * Whether a run has an open job is asked from the last of its jobs in
 * the partial index jobs_open (run, domain) backwards: jobs are claimed
 * in about the order of their domains, so the open ones are found at the
 * end at once, where a forward scan would first step over the index
 * entries of every job already ended (until a vacuum removes them): a
 * scan of the whole run for each of its domains.  It is a scalar
 * subquery, "(SELECT domain_id ... ORDER BY ... LIMIT 1) IS NULL":
 * PostgreSQL drops the ORDER BY and LIMIT of an EXISTS.
 */
#define NGX_DR_JOBS_OPEN_LAST  " ORDER BY domain_id DESC LIMIT 1"


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

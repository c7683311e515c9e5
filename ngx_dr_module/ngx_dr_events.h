
/*
 * Domain Runner: events and jolts (news correlation over the events an
 * operator records).
 */


#ifndef _NGX_DR_EVENTS_H_INCLUDED_
#define _NGX_DR_EVENTS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_dr_pg.h"


#define NGX_DR_EVENTS_ISO_TIME  "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

/*
 * A column of a statement over "domains d" with $2 the days of history:
 * the domain's events of those days, oldest first, as a JSON list.
 */
#define NGX_DR_EVENTS_SERIES                                                  \
    " (SELECT coalesce(json_agg(json_build_object('id', e.id,"                \
    "   'date', to_char(e.occurred_at AT TIME ZONE 'UTC', "                   \
    NGX_DR_EVENTS_ISO_TIME "), 'kind', e.kind, 'severity', e.severity,"       \
    "   'title', e.title, 'url', e.url, 'jolt', e.jolt)"                      \
    "   ORDER BY e.occurred_at, e.id), '[]')"                                 \
    "   FROM events e WHERE e.domain_id = d.id"                               \
    "   AND e.occurred_at > now() - make_interval(days => $2::int))"          \
    "  AS events"


extern const char  ngx_dr_events_jolt_sql[];

ngx_int_t ngx_dr_events_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_dr_events_add(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body);
ngx_int_t ngx_dr_events_list(ngx_http_request_t *r);


#endif /* _NGX_DR_EVENTS_H_INCLUDED_ */

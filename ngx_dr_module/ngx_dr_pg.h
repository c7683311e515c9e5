
/*
 * Domain Runner: the asynchronous PostgreSQL pool of each worker.
 *
 * libpq owns the sockets; the pool only watches them through nginx
 * connections, so no worker ever blocks on the database.  Every query is
 * sent with PQsendQueryParams, or PQsendQueryPrepared for a statement
 * prepared on the connection: request data reaches PostgreSQL only as
 * bound parameters.
 */


#ifndef _NGX_DR_PG_H_INCLUDED_
#define _NGX_DR_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


/* query flags */
#define NGX_DR_PG_READ         0x01    /* a replica may answer */
#define NGX_DR_PG_URGENT       0x02    /* ahead of the queue: probes */
/* a hot statement, of static storage: prepared once on each connection */
#define NGX_DR_PG_PREPARE      0x04

/* query outcomes, in ngx_dr_pg_query_t.rc */
#define NGX_DR_PG_OK           0
#define NGX_DR_PG_UNAVAILABLE  1       /* no connection, or timed out */
#define NGX_DR_PG_FAILED       2       /* the server refused the query */


typedef struct ngx_dr_pg_query_s   ngx_dr_pg_query_t;
typedef struct ngx_dr_pg_server_s  ngx_dr_pg_server_t;

typedef void (*ngx_dr_pg_handler_pt)(ngx_dr_pg_query_t *q);

/* channel NULL: the listener (re)connected, notifications may be lost */
typedef void (*ngx_dr_pg_notify_pt)(ngx_str_t *channel, ngx_str_t *payload,
    void *data);


typedef struct {
    ngx_str_t            name;         /* "primary", "replica 1", ... */
    ngx_str_t            where;        /* host/port/dbname, for logs */
    ngx_array_t          keywords;     /* of char *, NULL-terminated */
    ngx_array_t          values;       /* of char *, NULL-terminated */
    ngx_uint_t           replica;      /* unsigned replica:1 */
} ngx_dr_pg_server_conf_t;


typedef struct {
    ngx_dr_pg_server_conf_t  *primary;
    ngx_array_t              *replicas;     /* of ngx_dr_pg_server_conf_t */
    ngx_uint_t                pool_size;
    ngx_uint_t                max_waiting;
    ngx_msec_t                connect_timeout;
    ngx_msec_t                query_timeout;
} ngx_dr_pg_conf_t;


struct ngx_dr_pg_query_s {
    ngx_dr_pg_handler_pt      handler;
    void                     *data;

    /* the outcome, valid in the handler only */
    ngx_uint_t                rc;
    PGresult                 *res;
    ngx_str_t                 error;

    /* private */
    ngx_pool_t               *pool;
    const char               *sql;
    const char              **params;
    int                       nparams;
    ngx_msec_t                timeout;
    ngx_msec_t                start;
    ngx_log_t                *log;
    ngx_event_t               event;       /* timeout, or posted outcome */
    ngx_queue_t               queue;       /* in server->waiting */
    ngx_dr_pg_server_t       *server;
    void                     *conn;        /* ngx_dr_pg_conn_t, if sent */
    unsigned                  state:2;
    unsigned                  prepare:1;
};


char *ngx_dr_pg_conninfo(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_dr_pg_init_conf(ngx_conf_t *cf, ngx_dr_pg_conf_t *pcf);

ngx_int_t ngx_dr_pg_init_process(ngx_cycle_t *cycle, ngx_dr_pg_conf_t *pcf);
void ngx_dr_pg_exit_process(ngx_cycle_t *cycle);

ngx_dr_pg_query_t *ngx_dr_pg_query(ngx_pool_t *pool, ngx_log_t *log,
    ngx_uint_t flags, ngx_msec_t timeout, const char *sql,
    int nparams, const char **params, ngx_dr_pg_handler_pt handler,
    void *data);
ngx_int_t ngx_dr_pg_background(ngx_log_t *log, const char *sql,
    ngx_dr_pg_handler_pt handler, void *data);
void ngx_dr_pg_cancel(ngx_dr_pg_query_t *q);

ngx_uint_t ngx_dr_pg_configured(void);
ngx_uint_t ngx_dr_pg_nreplicas_get(void);
ngx_uint_t ngx_dr_pg_replica_up(ngx_uint_t i, ngx_str_t *name);

ngx_int_t ngx_dr_pg_listen(const char *channel, ngx_dr_pg_notify_pt handler,
    void *data);
ngx_int_t ngx_dr_pg_listen_start(void);
ngx_uint_t ngx_dr_pg_listening_now(void);


/* also for the sockets of libcurl (ngx_dr_llm.c) */
void ngx_dr_release_connection(ngx_connection_t *c, ngx_uint_t flags);


#endif /* _NGX_DR_PG_H_INCLUDED_ */

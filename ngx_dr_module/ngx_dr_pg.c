
/*
 * Domain Runner: the asynchronous PostgreSQL pool of each worker.
 *
 * Each worker keeps, for the primary and for every replica, up to
 * dr_pg_pool_size connections.  They are opened on demand with
 * PQconnectStartParams/PQconnectPoll, and every socket libpq opens is
 * watched through an nginx connection registered level-triggered, so the
 * event loop calls back whenever libpq can make progress.  Queries wait in
 * a bounded FIFO for an idle connection; a connection is reused only when
 * its transaction status is idle.  When a server cannot be reached, the
 * pool backs off (100 ms doubling to 2 s) and fails waiting queries at
 * once instead of letting requests hang: callers answer 503 quickly and
 * the next query after the back-off tries again, so the pool recovers by
 * itself when the server returns.
 *
 * Outcomes always reach the caller through a posted event, never from
 * inside ngx_dr_pg_query() itself, so callers have one code path.
 *
 * The hot statements (NGX_DR_PG_PREPARE) are prepared on each connection
 * the first time it runs them: the Parse and the first execution go in
 * one round trip in libpq's pipeline mode, and later executions send only
 * the statement's name and its parameters, which spares PostgreSQL the
 * parsing and planning of each.  A new connection after a lost one
 * prepares them again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <netdb.h>

#include "ngx_dr_pg.h"
#include "ngx_dr_counters.h"


#define NGX_DR_PG_BACKOFF_MIN      100
#define NGX_DR_PG_BACKOFF_MAX      2000

/* an orphaned query may run this long past its timeout before its
 * connection is given up (the server's statement_timeout ends it first) */
#define NGX_DR_PG_DRAIN_GRACE      1000

#define NGX_DR_PG_ERRLEN           256

/* statements prepared on one connection, at most */
#define NGX_DR_PG_PREPARED         32

/* query states */
#define NGX_DR_PG_Q_WAITING        0
#define NGX_DR_PG_Q_SENT           1
#define NGX_DR_PG_Q_POSTED         2
#define NGX_DR_PG_Q_DONE           3

/* connection states */
#define NGX_DR_PG_CLOSED           0
#define NGX_DR_PG_CONNECTING       1
#define NGX_DR_PG_IDLE             2
#define NGX_DR_PG_BUSY             3


typedef struct {
    PGconn                   *pg;
    ngx_connection_t         *c;
    ngx_dr_pg_server_t       *server;
    ngx_dr_pg_query_t        *query;       /* NULL when idle or orphaned */
    PGresult                 *res;         /* result being collected */
    ngx_event_t               timer;       /* connect or drain deadline */
    ngx_log_t                 log;         /* its own "action" */
    ngx_uint_t                state;
    /* the statements prepared here, by the index of their names */
    const char               *prepared[NGX_DR_PG_PREPARED];
    ngx_uint_t                nprepared;
    unsigned                  flushing:1;
    unsigned                  listener:1;
    unsigned                  pipeline:1;  /* Parse and first execution */
} ngx_dr_pg_conn_t;


typedef struct {
    const char               *channel;
    ngx_dr_pg_notify_pt       handler;
    void                     *data;
} ngx_dr_pg_channel_t;


#define NGX_DR_PG_CHANNELS         8


struct ngx_dr_pg_server_s {
    ngx_dr_pg_server_conf_t  *conf;
    const char              **keywords;
    const char              **values;
    ngx_dr_pg_conn_t         *conns;
    ngx_uint_t                nconns;
    ngx_queue_t               waiting;
    ngx_uint_t                nwaiting;
    ngx_uint_t                failures;    /* consecutive connect failures */
    ngx_msec_t                retry_at;
    ngx_log_t                 log;
    u_char                    error[NGX_DR_PG_ERRLEN];
    size_t                    error_len;
};


static size_t ngx_dr_pg_redact(u_char *buf, size_t size, const char *err);
static char *ngx_dr_pg_resolve(ngx_conf_t *cf, ngx_dr_pg_server_conf_t *scf,
    char *host);
static char *ngx_dr_pg_resolve_all(ngx_conf_t *cf,
    ngx_dr_pg_server_conf_t *scf, char *host, struct addrinfo *res);
static ngx_int_t ngx_dr_pg_server_init(ngx_cycle_t *cycle,
    ngx_dr_pg_server_t *s, ngx_dr_pg_server_conf_t *scf);
static ngx_dr_pg_server_t *ngx_dr_pg_route(ngx_uint_t flags);
static void ngx_dr_pg_dispatch(ngx_dr_pg_server_t *s);
static void ngx_dr_pg_dispatch_queue(ngx_dr_pg_server_t *s);
static ngx_dr_pg_query_t *ngx_dr_pg_waiting_first(ngx_dr_pg_server_t *s);
static void ngx_dr_pg_publish(void);
static ngx_int_t ngx_dr_pg_connect(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_connect_poll(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_connected(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_connect_failed(ngx_dr_pg_conn_t *conn,
    const char *reason);
static void ngx_dr_pg_send(ngx_dr_pg_conn_t *conn, ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_pg_send_prepared(ngx_dr_pg_conn_t *conn,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_pg_flush(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_event_handler(ngx_event_t *ev);
static void ngx_dr_pg_read(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_prepared(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_complete(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_lost(ngx_dr_pg_conn_t *conn, const char *what);
static void ngx_dr_pg_timer_handler(ngx_event_t *ev);
static ngx_int_t ngx_dr_pg_watch(ngx_dr_pg_conn_t *conn, ngx_uint_t rd,
    ngx_uint_t wr);
static void ngx_dr_pg_unwatch(ngx_dr_pg_conn_t *conn, ngx_uint_t closing);
static void ngx_dr_pg_close(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_fail(ngx_dr_pg_query_t *q, ngx_uint_t rc,
    const char *error, size_t len);
static void ngx_dr_pg_post(ngx_dr_pg_query_t *q);
static void ngx_dr_pg_query_timeout(ngx_event_t *ev);
static void ngx_dr_pg_query_done(ngx_event_t *ev);
static void ngx_dr_pg_query_cleanup(void *data);
static void ngx_dr_pg_notice(void *arg, const char *message);
static void ngx_dr_pg_set_error(ngx_dr_pg_server_t *s, const char *msg);
static size_t ngx_dr_pg_trim(const char *msg);
static ngx_uint_t ngx_dr_pg_unavailable(PGresult *res);


static void ngx_dr_pg_listen_connect(ngx_dr_pg_conn_t *conn);
static void ngx_dr_pg_listen_notify(PGnotify *notify);


static ngx_dr_pg_conf_t    *ngx_dr_pg_conf;
static ngx_uint_t           ngx_dr_pg_exiting;

/*
 * One connection per worker that has channels listens: worker 0 for the
 * node's caches, every worker that calls providers for the budgets
 */
static ngx_dr_pg_conn_t     ngx_dr_pg_listener;
static ngx_uint_t           ngx_dr_pg_listening;
static ngx_dr_pg_channel_t  ngx_dr_pg_channels[NGX_DR_PG_CHANNELS];
static ngx_uint_t           ngx_dr_pg_nchannels;
static ngx_dr_pg_server_t  *ngx_dr_pg_primary;
static ngx_dr_pg_server_t  *ngx_dr_pg_replicas;
static ngx_uint_t           ngx_dr_pg_nreplicas;
static ngx_uint_t           ngx_dr_pg_next_replica;


/* configuration */


char *
ngx_dr_pg_conninfo(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_pg_conf_t  *pcf;

    char                     *err, *host, *hostaddr, *port, *dbname;
    u_char                   *conninfo, *p, *last;
    size_t                    len;
    ngx_str_t                *value;
    PQconninfoOption         *opts, *o;
    ngx_dr_pg_server_conf_t  *scf;
    const char              **kw, **val;
    u_char                    reason[NGX_DR_PG_ERRLEN];

    pcf = (ngx_dr_pg_conf_t *) ((char *) conf + cmd->offset);
    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs a libpq conninfo, such as "
                           "\"host=/run/postgresql dbname=app\"",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (cmd->name.len == sizeof("dr_pg") - 1) {
        if (pcf->primary != NULL) {
            return "is duplicate";
        }

        scf = ngx_pcalloc(cf->pool, sizeof(ngx_dr_pg_server_conf_t));
        if (scf == NULL) {
            return NGX_CONF_ERROR;
        }

        pcf->primary = scf;
        ngx_str_set(&scf->name, "primary");

    } else {
        if (pcf->replicas == NULL) {
            pcf->replicas = ngx_array_create(cf->pool, 2,
                                            sizeof(ngx_dr_pg_server_conf_t));
            if (pcf->replicas == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        scf = ngx_array_push(pcf->replicas);
        if (scf == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(scf, sizeof(ngx_dr_pg_server_conf_t));
        scf->replica = 1;

        scf->name.data = ngx_pnalloc(cf->pool, sizeof("replica ") - 1
                                               + NGX_INT_T_LEN);
        if (scf->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        scf->name.len = ngx_sprintf(scf->name.data, "replica %ui",
                                    pcf->replicas->nelts)
                        - scf->name.data;
    }

    conninfo = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (conninfo == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(conninfo, value[1].data, value[1].len + 1);

    err = NULL;
    opts = PQconninfoParse((char *) conninfo, &err);

    if (opts == NULL) {
        if (err == NULL) {
            return NGX_CONF_ERROR;
        }

        len = ngx_dr_pg_redact(reason, sizeof(reason), err);
        PQfreemem(err);

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid conninfo in \"%V\": %*s",
                           &cmd->name, len, reason);
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&scf->keywords, cf->pool, 8, sizeof(char *))
        != NGX_OK
        || ngx_array_init(&scf->values, cf->pool, 8, sizeof(char *))
           != NGX_OK)
    {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    host = NULL;
    hostaddr = NULL;
    port = NULL;
    dbname = NULL;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "password") == 0) {
            /* "nginx -T" prints the configuration, to whoever asks */
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" carries a password, which \"nginx -T\" "
                               "would print: put it in a pgpass file "
                               "(passfile= or PGPASSFILE) or a service file",
                               &cmd->name);
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        kw = ngx_array_push(&scf->keywords);
        val = ngx_array_push(&scf->values);
        if (kw == NULL || val == NULL) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        *kw = (char *) ngx_pstrdup(cf->pool, &(ngx_str_t) {
                   ngx_strlen(o->keyword) + 1, (u_char *) o->keyword });
        *val = (char *) ngx_pstrdup(cf->pool, &(ngx_str_t) {
                   ngx_strlen(o->val) + 1, (u_char *) o->val });

        if (*kw == NULL || *val == NULL) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = (char *) *val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = (char *) *val;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            port = (char *) *val;

        } else if (ngx_strcmp(o->keyword, "dbname") == 0) {
            dbname = (char *) *val;
        }
    }

    PQconninfoFree(opts);

    /* a description for log lines that can never carry a secret */

    p = ngx_pnalloc(cf->pool, 256);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    last = ngx_slprintf(p, p + 256, "host=%s port=%s dbname=%s",
                        host ? host : (hostaddr ? hostaddr : "(default)"),
                        port ? port : "(default)",
                        dbname ? dbname : "(default)");
    scf->where.data = p;
    scf->where.len = last - p;

    if (host != NULL && hostaddr == NULL) {
        return ngx_dr_pg_resolve(cf, scf, host);
    }

    return NGX_CONF_OK;
}


/*
 * libpq's reason for refusing a conninfo quotes pieces of it, at times a
 * whole URI with its password.  Only quoted option names and punctuation
 * are kept; the first other quotation is replaced by "..." and the rest
 * of the reason up to its last quotation mark is left out, since a quoted
 * piece may itself hold quotation marks.
 */

static size_t
ngx_dr_pg_redact(u_char *buf, size_t size, const char *err)
{
    u_char            *p, *last;
    size_t             len;
    const char        *end, *close, *rest;
    PQconninfoOption  *known, *o;

    known = PQconninfoParse("", NULL);

    end = err + ngx_dr_pg_trim(err);
    p = buf;
    last = buf + size;

    while (err < end && p < last) {

        if (*err != '"') {
            *p++ = *err++;
            continue;
        }

        close = (const char *) ngx_strlchr((u_char *) err + 1, (u_char *) end,
                                           '"');
        len = close ? (size_t) (close - err - 1) : 0;

        o = NULL;

        if (len > 1 && known) {
            for (o = known; o->keyword; o++) {
                if (ngx_strlen(o->keyword) == len
                    && ngx_strncmp(o->keyword, err + 1, len) == 0)
                {
                    break;
                }
            }
        }

        if ((len == 1 && ngx_strchr("=]:/", err[1]) != NULL)
            || (o && o->keyword))
        {
            len = ngx_min(len + 2, (size_t) (last - p));
            p = ngx_cpymem(p, err, len);
            err = close + 1;
            continue;
        }

        p = ngx_cpymem(p, "\"...\"", ngx_min(5, (size_t) (last - p)));

        for (rest = end; rest > err && rest[-1] != '"'; rest--) {
            /* void */
        }

        err = (rest > err + 1) ? rest : end;
    }

    if (known) {
        PQconninfoFree(known);
    }

    return p - buf;
}


/*
 * libpq resolves host names with a blocking getaddrinfo() inside
 * PQconnectPoll().  Names are therefore resolved here, at configuration
 * time as nginx does for proxy_pass, and handed to libpq as hostaddr; host
 * stays for TLS verification and pgpass look-ups.  Socket paths and
 * address literals need nothing.
 */

static char *
ngx_dr_pg_resolve(ngx_conf_t *cf, ngx_dr_pg_server_conf_t *scf, char *host)
{
    int               rc;
    char             *name, *next, **kw, **val;
    u_char           *addrs, *p;
    size_t            len;
    ngx_uint_t        resolve;
    struct addrinfo   hints, *res;
    u_char            text[NGX_SOCKADDR_STRLEN];

    len = ngx_strlen(host);
    resolve = 0;

    addrs = ngx_pnalloc(cf->pool, (len + 1) * NGX_SOCKADDR_STRLEN);
    if (addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    p = addrs;
    name = (char *) ngx_pstrdup(cf->pool, &(ngx_str_t) { len + 1,
                                                         (u_char *) host });
    if (name == NULL) {
        return NGX_CONF_ERROR;
    }

    for ( ;; ) {
        next = ngx_strchr(name, ',');
        if (next) {
            *next = '\0';
        }

        if (name[0] == '/' || name[0] == '@' || name[0] == '\0') {
            /* a socket directory: libpq takes an empty hostaddr entry */

        } else {
            ngx_memzero(&hints, sizeof(struct addrinfo));
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;

            rc = getaddrinfo(name, NULL, &hints, &res);
            if (rc != 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "host \"%s\" of the %V database in "
                                   "conninfo could not be resolved: %s",
                                   name, &scf->name, gai_strerror(rc));
                return NGX_CONF_ERROR;
            }

            if (next == NULL && p == addrs) {
                /*
                 * a single host: every address it has, as libpq would try
                 * them ("localhost" is often ::1 and 127.0.0.1)
                 */
                return ngx_dr_pg_resolve_all(cf, scf, host, res);
            }

            len = ngx_sock_ntop(res->ai_addr, res->ai_addrlen, text,
                                NGX_SOCKADDR_STRLEN, 0);
            freeaddrinfo(res);

            p = ngx_cpymem(p, text, len);
            resolve = 1;
        }

        if (next == NULL) {
            break;
        }

        *p++ = ',';
        name = next + 1;
    }

    *p++ = '\0';

    if (!resolve) {
        return NGX_CONF_OK;
    }

    kw = ngx_array_push(&scf->keywords);
    val = ngx_array_push(&scf->values);
    if (kw == NULL || val == NULL) {
        return NGX_CONF_ERROR;
    }

    *kw = "hostaddr";
    *val = (char *) addrs;

    return NGX_CONF_OK;
}


static char *
ngx_dr_pg_resolve_all(ngx_conf_t *cf, ngx_dr_pg_server_conf_t *scf,
    char *host, struct addrinfo *res)
{
    char             **kw, **val, **v;
    u_char            *hosts, *addrs, *h, *a;
    size_t             len, hlen;
    ngx_uint_t         i, n;
    struct addrinfo   *ai;
    u_char             text[NGX_SOCKADDR_STRLEN];

    n = 0;

    for (ai = res; ai; ai = ai->ai_next) {
        n++;
    }

    hlen = ngx_strlen(host);
    hosts = ngx_pnalloc(cf->pool, n * (hlen + 1));
    addrs = ngx_pnalloc(cf->pool, n * NGX_SOCKADDR_STRLEN);

    if (hosts == NULL || addrs == NULL) {
        freeaddrinfo(res);
        return NGX_CONF_ERROR;
    }

    h = hosts;
    a = addrs;

    for (ai = res; ai; ai = ai->ai_next) {
        len = ngx_sock_ntop(ai->ai_addr, ai->ai_addrlen, text,
                            NGX_SOCKADDR_STRLEN, 0);

        /* getaddrinfo() repeats an address for each protocol */
        if (a > addrs && ngx_strlcasestrn(addrs, a, text, len - 1)) {
            continue;
        }

        if (a > addrs) {
            *h++ = ',';
            *a++ = ',';
        }

        h = ngx_cpymem(h, host, hlen);
        a = ngx_cpymem(a, text, len);
    }

    *h = '\0';
    *a = '\0';

    freeaddrinfo(res);

    v = scf->values.elts;
    kw = scf->keywords.elts;

    for (i = 0; i < scf->keywords.nelts; i++) {
        if (ngx_strcmp(kw[i], "host") == 0) {
            v[i] = (char *) hosts;
        }
    }

    kw = ngx_array_push(&scf->keywords);
    val = ngx_array_push(&scf->values);
    if (kw == NULL || val == NULL) {
        return NGX_CONF_ERROR;
    }

    *kw = "hostaddr";
    *val = (char *) addrs;

    return NGX_CONF_OK;
}


char *
ngx_dr_pg_init_conf(ngx_conf_t *cf, ngx_dr_pg_conf_t *pcf)
{
    ngx_conf_init_uint_value(pcf->pool_size, 8);
    ngx_conf_init_uint_value(pcf->max_waiting, 1024);
    ngx_conf_init_msec_value(pcf->connect_timeout, 1000);
    ngx_conf_init_msec_value(pcf->query_timeout, 10000);

    if (pcf->connect_timeout == 0 || pcf->query_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_pg_connect_timeout\" and "
                           "\"dr_pg_query_timeout\" must be at least 1ms");
        return NGX_CONF_ERROR;
    }

    if (pcf->replicas != NULL && pcf->primary == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_pg_replica\" needs a \"dr_pg\" primary");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* worker set-up and tear-down */


ngx_int_t
ngx_dr_pg_init_process(ngx_cycle_t *cycle, ngx_dr_pg_conf_t *pcf)
{
    ngx_uint_t                i;
    ngx_dr_pg_server_conf_t  *scf;

    ngx_dr_pg_conf = pcf;

    if (pcf->primary == NULL) {
        return NGX_OK;
    }

    ngx_dr_pg_primary = ngx_pcalloc(cycle->pool, sizeof(ngx_dr_pg_server_t));
    if (ngx_dr_pg_primary == NULL) {
        return NGX_ERROR;
    }

    if (ngx_dr_pg_server_init(cycle, ngx_dr_pg_primary, pcf->primary)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (pcf->replicas == NULL) {
        return NGX_OK;
    }

    ngx_dr_pg_nreplicas = pcf->replicas->nelts;
    ngx_dr_pg_replicas = ngx_pcalloc(cycle->pool,
                            ngx_dr_pg_nreplicas * sizeof(ngx_dr_pg_server_t));
    if (ngx_dr_pg_replicas == NULL) {
        return NGX_ERROR;
    }

    scf = pcf->replicas->elts;

    for (i = 0; i < ngx_dr_pg_nreplicas; i++) {
        if (ngx_dr_pg_server_init(cycle, &ngx_dr_pg_replicas[i], &scf[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_dr_pg_server_init(ngx_cycle_t *cycle, ngx_dr_pg_server_t *s,
    ngx_dr_pg_server_conf_t *scf)
{
    char              **ukw, **uval;
    u_char             *p;
    ngx_uint_t          i, n, has_name, has_keepalive, has_gssenc, options;
    ngx_dr_pg_conn_t   *conn;

    s->conf = scf;
    s->log = *cycle->log;
    ngx_queue_init(&s->waiting);

    /*
     * The worker's own copy of the keywords adds an application_name that
     * names the node and the worker, and a statement_timeout equal to the
     * query timeout, so that the server itself ends a query nobody waits
     * for any more.
     */

    ukw = scf->keywords.elts;
    uval = scf->values.elts;
    n = scf->keywords.nelts;

    /* options, three keepalives, gssencmode, application_name, NULL */

    s->keywords = ngx_pcalloc(cycle->pool, (n + 7) * sizeof(char *));
    s->values = ngx_pcalloc(cycle->pool, (n + 7) * sizeof(char *));
    if (s->keywords == NULL || s->values == NULL) {
        return NGX_ERROR;
    }

    has_name = 0;
    has_keepalive = 0;
    has_gssenc = 0;
    options = n;

    for (i = 0; i < n; i++) {
        s->keywords[i] = ukw[i];
        s->values[i] = uval[i];

        if (ngx_strcmp(ukw[i], "application_name") == 0) {
            has_name = 1;

        } else if (ngx_strncmp(ukw[i], "keepalives", 10) == 0) {
            has_keepalive = 1;

        } else if (ngx_strcmp(ukw[i], "gssencmode") == 0) {
            has_gssenc = 1;

        } else if (ngx_strcmp(ukw[i], "options") == 0) {
            options = i;
        }
    }

    p = ngx_pnalloc(cycle->pool, (options < n ? ngx_strlen(uval[options])
                                              : 0)
                                 + sizeof(" -c statement_timeout=")
                                 + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (options < n) {
        (void) ngx_sprintf(p, "%s -c statement_timeout=%M%Z", uval[options],
                           ngx_dr_pg_conf->query_timeout);
        s->values[options] = (char *) p;

    } else {
        (void) ngx_sprintf(p, "-c statement_timeout=%M%Z",
                           ngx_dr_pg_conf->query_timeout);
        s->keywords[n] = "options";
        s->values[n] = (char *) p;
        n++;
    }

    if (!has_keepalive) {
        /* a server gone silent behind a network fault is noticed */
        s->keywords[n] = "keepalives_idle";
        s->values[n++] = "10";
        s->keywords[n] = "keepalives_interval";
        s->values[n++] = "5";
        s->keywords[n] = "keepalives_count";
        s->values[n++] = "3";
    }

    if (!has_gssenc && getenv("PGGSSENCMODE") == NULL) {
        /*
         * libpq's default, "prefer", asks for GSSAPI encryption whenever
         * a Kerberos credential cache exists, and the Kerberos library
         * then finds and asks its KDC with blocking calls, in the worker
         */
        s->keywords[n] = "gssencmode";
        s->values[n++] = "disable";
    }

    if (!has_name) {
        p = ngx_pnalloc(cycle->pool, sizeof("domain-runner  worker ")
                                     + cycle->hostname.len + NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* PostgreSQL keeps at most 63 bytes of the name */
        (void) ngx_sprintf(p, "domain-runner %V worker %P%Z",
                           &cycle->hostname, ngx_pid);
        s->keywords[n] = "application_name";
        s->values[n] = (char *) p;
    }

    s->nconns = ngx_dr_pg_conf->pool_size;
    s->conns = ngx_pcalloc(cycle->pool, s->nconns * sizeof(ngx_dr_pg_conn_t));
    if (s->conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < s->nconns; i++) {
        conn = &s->conns[i];
        conn->server = s;
        conn->log = s->log;
        conn->timer.handler = ngx_dr_pg_timer_handler;
        conn->timer.data = conn;
        conn->timer.log = &conn->log;
        conn->timer.cancelable = 1;
    }

    return NGX_OK;
}


void
ngx_dr_pg_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t           i, j, n;
    ngx_dr_pg_server_t  *s;

    ngx_dr_pg_exiting = 1;

    if (ngx_dr_pg_listener.state != NGX_DR_PG_CLOSED) {
        ngx_dr_pg_close(&ngx_dr_pg_listener);
    }

    if (ngx_dr_pg_listener.timer.timer_set) {
        ngx_del_timer(&ngx_dr_pg_listener.timer);
    }

    n = ngx_dr_pg_nreplicas + 1;

    for (i = 0; i < n; i++) {
        s = (i == 0) ? ngx_dr_pg_primary : &ngx_dr_pg_replicas[i - 1];

        if (s == NULL) {
            continue;
        }

        for (j = 0; j < s->nconns; j++) {
            if (s->conns[j].state != NGX_DR_PG_CLOSED) {
                ngx_dr_pg_close(&s->conns[j]);
            }
        }
    }

    ngx_dr_pg_primary = NULL;
    ngx_dr_pg_replicas = NULL;
    ngx_dr_pg_nreplicas = 0;
}


ngx_uint_t
ngx_dr_pg_configured(void)
{
    return ngx_dr_pg_primary != NULL;
}


ngx_uint_t
ngx_dr_pg_nreplicas_get(void)
{
    return ngx_dr_pg_nreplicas;
}


/* a replica is down while this worker backs off after failing to reach it */

ngx_uint_t
ngx_dr_pg_replica_up(ngx_uint_t i, ngx_str_t *name)
{
    ngx_dr_pg_server_t  *s;

    s = &ngx_dr_pg_replicas[i];
    *name = s->conf->name;

    return s->failures == 0;
}


/* queries */


/*
 * A background query without parameters, in a pool of its own that the
 * handler destroys with q->pool; NGX_ERROR when it could not be sent (the
 * pool is gone then).
 */

ngx_int_t
ngx_dr_pg_background(ngx_log_t *log, const char *sql,
    ngx_dr_pg_handler_pt handler, void *data)
{
    ngx_pool_t  *pool;

    pool = ngx_create_pool(1024, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_dr_pg_query(pool, log, 0, 0, sql, 0, NULL, handler, data)
        == NULL)
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_dr_pg_query_t *
ngx_dr_pg_query(ngx_pool_t *pool, ngx_log_t *log, ngx_uint_t flags,
    ngx_msec_t timeout, const char *sql, int nparams, const char **params,
    ngx_dr_pg_handler_pt handler, void *data)
{
    int                  i;
    size_t               len;
    ngx_pool_cleanup_t  *cln;
    ngx_dr_pg_query_t   *q;
    ngx_dr_pg_server_t  *s;

    q = ngx_pcalloc(pool, sizeof(ngx_dr_pg_query_t));
    if (q == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    q->handler = handler;
    q->data = data;
    q->pool = pool;
    q->sql = sql;
    q->nparams = nparams;
    q->log = log;
    q->prepare = (flags & NGX_DR_PG_PREPARE) ? 1 : 0;

    if (nparams > 0) {
        q->params = ngx_palloc(pool, nparams * sizeof(char *));
        if (q->params == NULL) {
            return NULL;
        }

        /* the caller's strings may not outlive this call */

        for (i = 0; i < nparams; i++) {
            if (params[i] == NULL) {
                q->params[i] = NULL;
                continue;
            }

            len = ngx_strlen(params[i]) + 1;
            q->params[i] = ngx_pnalloc(pool, len);
            if (q->params[i] == NULL) {
                return NULL;
            }

            ngx_memcpy((char *) q->params[i], params[i], len);
        }
    }

    q->event.data = q;
    q->event.log = log;
    q->event.handler = ngx_dr_pg_query_timeout;
    q->start = ngx_current_msec;

    cln->handler = ngx_dr_pg_query_cleanup;
    cln->data = q;

    s = ngx_dr_pg_route(flags);

    if (s == NULL) {
        ngx_dr_pg_fail(q, NGX_DR_PG_UNAVAILABLE,
                       "no database is configured",
                       sizeof("no database is configured") - 1);
        return q;
    }

    q->server = s;

    if (s->nwaiting && s->nwaiting >= ngx_dr_pg_conf->max_waiting) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "PostgreSQL %V: %ui queries already wait, "
                      "refusing one more", &s->conf->name, s->nwaiting);
        ngx_dr_pg_fail(q, NGX_DR_PG_UNAVAILABLE,
                       "too many queries waiting for the database",
                       sizeof("too many queries waiting for the database")
                       - 1);
        return q;
    }

    q->timeout = timeout ? timeout : ngx_dr_pg_conf->query_timeout;
    q->state = NGX_DR_PG_Q_WAITING;

    if (flags & NGX_DR_PG_URGENT) {
        ngx_queue_insert_head(&s->waiting, &q->queue);

    } else {
        ngx_queue_insert_tail(&s->waiting, &q->queue);
    }

    s->nwaiting++;

    ngx_add_timer(&q->event, q->timeout);

    ngx_dr_pg_dispatch(s);

    return q;
}


void
ngx_dr_pg_cancel(ngx_dr_pg_query_t *q)
{
    ngx_dr_pg_conn_t  *conn;

    switch (q->state) {

    case NGX_DR_PG_Q_WAITING:
        ngx_queue_remove(&q->queue);
        q->server->nwaiting--;
        break;

    case NGX_DR_PG_Q_SENT:
        /*
         * The query keeps running; its connection drains the result and
         * becomes idle again.  The server's statement_timeout bounds the
         * wait, and the drain timer gives the connection up if even that
         * does not come.
         */
        conn = q->conn;
        conn->query = NULL;
        ngx_add_timer(&conn->timer, ngx_dr_pg_conf->query_timeout
                                    + NGX_DR_PG_DRAIN_GRACE);
        break;

    case NGX_DR_PG_Q_POSTED:
        if (q->event.posted) {
            ngx_delete_posted_event(&q->event);
        }

        if (q->res) {
            PQclear(q->res);
            q->res = NULL;
        }

        break;

    default: /* NGX_DR_PG_Q_DONE */
        return;
    }

    if (q->event.timer_set) {
        ngx_del_timer(&q->event);
    }

    q->state = NGX_DR_PG_Q_DONE;
}


static void
ngx_dr_pg_query_cleanup(void *data)
{
    ngx_dr_pg_query_t  *q = data;

    ngx_dr_pg_cancel(q);
}


static ngx_dr_pg_server_t *
ngx_dr_pg_route(ngx_uint_t flags)
{
    ngx_uint_t           i, n;
    ngx_dr_pg_server_t  *s;

    if (ngx_dr_pg_primary == NULL) {
        return NULL;
    }

    if (!(flags & NGX_DR_PG_READ) || ngx_dr_pg_nreplicas == 0) {
        return ngx_dr_pg_primary;
    }

    /* round robin over the replicas that are not backing off */

    for (n = 0; n < ngx_dr_pg_nreplicas; n++) {
        i = ngx_dr_pg_next_replica++ % ngx_dr_pg_nreplicas;
        s = &ngx_dr_pg_replicas[i];

        if (s->failures == 0
            || (ngx_msec_int_t) (ngx_current_msec - s->retry_at) >= 0)
        {
            return s;
        }
    }

    return ngx_dr_pg_primary;
}


/*
 * Hands waiting queries to idle connections, opens connections while
 * queries still wait, and fails the waiting queries at once when the
 * server is backing off and no connection is alive to serve them.
 */

static void
ngx_dr_pg_dispatch(ngx_dr_pg_server_t *s)
{
    ngx_dr_pg_dispatch_queue(s);
    ngx_dr_pg_publish();
}


/* the pool's state, for the metrics: this worker's slot */

static void
ngx_dr_pg_publish(void)
{
    ngx_uint_t           i, j, open, busy, waiting;
    ngx_dr_pg_server_t  *s;

    open = 0;
    busy = 0;
    waiting = 0;

    for (i = 0; i < ngx_dr_pg_nreplicas + 1; i++) {
        s = (i == 0) ? ngx_dr_pg_primary : &ngx_dr_pg_replicas[i - 1];

        if (s == NULL) {
            continue;
        }

        waiting += s->nwaiting;

        for (j = 0; j < s->nconns; j++) {
            if (s->conns[j].state == NGX_DR_PG_IDLE) {
                open++;

            } else if (s->conns[j].state == NGX_DR_PG_BUSY) {
                open++;
                busy++;
            }
        }
    }

    ngx_dr_counters_pg(open, busy, waiting);
}


static void
ngx_dr_pg_dispatch_queue(ngx_dr_pg_server_t *s)
{
    ngx_uint_t          i, alive, connecting;
    ngx_dr_pg_conn_t   *conn;
    ngx_dr_pg_query_t  *q;

    for (i = 0; i < s->nconns && !ngx_queue_empty(&s->waiting); i++) {
        conn = &s->conns[i];

        if (conn->state != NGX_DR_PG_IDLE) {
            continue;
        }

        q = ngx_dr_pg_waiting_first(s);
        if (q == NULL) {
            break;
        }

        ngx_dr_pg_send(conn, q);
    }

    if (ngx_queue_empty(&s->waiting)) {
        return;
    }

    alive = 0;
    connecting = 0;

    for (i = 0; i < s->nconns; i++) {
        if (s->conns[i].state == NGX_DR_PG_CONNECTING) {
            connecting++;

        } else if (s->conns[i].state != NGX_DR_PG_CLOSED) {
            alive++;
        }
    }

    if (s->failures == 0
        || (ngx_msec_int_t) (ngx_current_msec - s->retry_at) >= 0)
    {
        for (i = 0; i < s->nconns && connecting < s->nwaiting; i++) {
            conn = &s->conns[i];

            if (conn->state != NGX_DR_PG_CLOSED) {
                continue;
            }

            if (ngx_dr_pg_connect(conn) != NGX_OK) {
                break;
            }

            connecting++;
        }
    }

    /*
     * Queries wait for a connection that is up, or for the first attempt
     * at a server not known to be down; while one is down, only the
     * attempt itself waits and queries fail at once.
     */

    if (alive || (connecting && s->failures == 0)) {
        return;
    }

    for ( ;; ) {
        q = ngx_dr_pg_waiting_first(s);
        if (q == NULL) {
            break;
        }

        if (s->conf->replica && ngx_dr_pg_primary) {
            /* a read the replica cannot serve goes to the primary */
            q->server = ngx_dr_pg_primary;
            ngx_queue_insert_tail(&ngx_dr_pg_primary->waiting, &q->queue);
            ngx_dr_pg_primary->nwaiting++;
            continue;
        }

        ngx_dr_pg_fail(q, NGX_DR_PG_UNAVAILABLE,
                       "cannot connect to the database",
                       sizeof("cannot connect to the database") - 1);
    }

    if (s->conf->replica && ngx_dr_pg_primary) {
        ngx_dr_pg_dispatch(ngx_dr_pg_primary);
    }
}


/*
 * The query that has waited longest, out of the queue; NULL when none
 * waits.  Sending or failing it may dispatch again and take others, so
 * the queue's head is read anew each time.
 */

static ngx_dr_pg_query_t *
ngx_dr_pg_waiting_first(ngx_dr_pg_server_t *s)
{
    ngx_queue_t  *qq;

    if (ngx_queue_empty(&s->waiting)) {
        return NULL;
    }

    qq = ngx_queue_head(&s->waiting);

    /*
     * Always false in a well-formed queue; it tells clang's static
     * analyzer that the head follows the sentinel, which it cannot know
     * and without which it sees a removed head taken again.
     */
    if (ngx_queue_prev(qq) != &s->waiting) {
        ngx_log_error(NGX_LOG_ALERT, &s->log, 0,
                      "the queue of PostgreSQL %V is broken",
                      &s->conf->name);
        return NULL;
    }

    ngx_queue_remove(qq);
    s->nwaiting--;

    return ngx_queue_data(qq, ngx_dr_pg_query_t, queue);
}


/* connecting */


static ngx_int_t
ngx_dr_pg_connect(ngx_dr_pg_conn_t *conn)
{
    PGconn              *pg;
    ngx_dr_pg_server_t  *s;

    s = conn->server;

    pg = PQconnectStartParams(s->keywords, s->values, 0);
    if (pg == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &s->log, 0,
                      "PQconnectStartParams() failed: out of memory");
        ngx_dr_pg_set_error(s, "out of memory");
        return NGX_ERROR;
    }

    conn->pg = pg;
    conn->state = NGX_DR_PG_CONNECTING;

    if (PQstatus(pg) == CONNECTION_BAD) {
        ngx_dr_pg_connect_failed(conn, PQerrorMessage(pg));
        return NGX_ERROR;
    }

    PQsetNoticeProcessor(pg, ngx_dr_pg_notice, s);

    ngx_add_timer(&conn->timer, ngx_dr_pg_conf->connect_timeout);

    /* libpq: behave as if PQconnectPoll() had asked to wait for writing */

    if (ngx_dr_pg_watch(conn, 0, 1) != NGX_OK) {
        ngx_dr_pg_connect_failed(conn, "cannot watch the socket");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * libpq may close its socket and open another inside PQconnectPoll() (next
 * host or address, SSL fallback), and the new one often gets the same
 * descriptor number.  So while connecting, the socket is taken out of the
 * event loop before each poll and registered afresh after it.
 */

static void
ngx_dr_pg_connect_poll(ngx_dr_pg_conn_t *conn)
{
    ngx_int_t  rc;

    ngx_dr_pg_unwatch(conn, 0);

    switch (PQconnectPoll(conn->pg)) {

    case PGRES_POLLING_READING:
        rc = ngx_dr_pg_watch(conn, 1, 0);
        break;

    case PGRES_POLLING_WRITING:
        rc = ngx_dr_pg_watch(conn, 0, 1);
        break;

    case PGRES_POLLING_OK:
        ngx_dr_pg_connected(conn);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_dr_pg_connect_failed(conn, PQerrorMessage(conn->pg));
        ngx_dr_pg_dispatch(conn->server);
        return;
    }

    if (rc != NGX_OK) {
        ngx_dr_pg_connect_failed(conn, "cannot watch the socket");
        ngx_dr_pg_dispatch(conn->server);
    }
}


static void
ngx_dr_pg_connected(ngx_dr_pg_conn_t *conn)
{
    ngx_dr_pg_server_t  *s;

    s = conn->server;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (PQsetnonblocking(conn->pg, 1) != 0
        || ngx_dr_pg_watch(conn, 1, 0) != NGX_OK)
    {
        ngx_dr_pg_connect_failed(conn, PQerrorMessage(conn->pg));
        ngx_dr_pg_dispatch(s);
        return;
    }

    if (s->failures) {
        ngx_log_error(NGX_LOG_NOTICE, &s->log, 0,
                      "PostgreSQL %V (%V) is reachable again",
                      &s->conf->name, &s->conf->where);
    }

    s->failures = 0;
    conn->state = NGX_DR_PG_IDLE;
    conn->c->log->action = "waiting on an idle PostgreSQL connection";

    if (conn->listener) {
        ngx_dr_pg_listen_connect(conn);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, &s->log, 0,
                   "dr pg: connected to %V, backend pid %d",
                   &s->conf->name, PQbackendPID(conn->pg));

    ngx_dr_pg_dispatch(s);
}


static void
ngx_dr_pg_connect_failed(ngx_dr_pg_conn_t *conn, const char *reason)
{
    ngx_msec_t           backoff;
    ngx_dr_pg_server_t  *s;

    s = conn->server;

    ngx_dr_pg_set_error(s, reason);

    ngx_dr_counters_pg_connect_error();

    ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                  "could not connect to PostgreSQL %V (%V): %*s",
                  &s->conf->name, &s->conf->where, s->error_len, s->error);

    s->failures++;

    backoff = NGX_DR_PG_BACKOFF_MIN << ngx_min(s->failures - 1, 8);
    backoff = ngx_min(backoff, NGX_DR_PG_BACKOFF_MAX);
    s->retry_at = ngx_current_msec + backoff;

    ngx_dr_pg_close(conn);
}


/* sending and reading */


static void
ngx_dr_pg_send(ngx_dr_pg_conn_t *conn, ngx_dr_pg_query_t *q)
{
    conn->state = NGX_DR_PG_BUSY;
    conn->query = q;
    conn->flushing = 1;
    conn->c->log->action = "sending a query to PostgreSQL";

    q->state = NGX_DR_PG_Q_SENT;
    q->conn = conn;

    if (q->prepare && !conn->listener) {
        if (ngx_dr_pg_send_prepared(conn, q) != NGX_OK) {
            ngx_dr_pg_lost(conn, "sending a query");
            return;
        }

    } else if (!PQsendQueryParams(conn->pg, q->sql, q->nparams, NULL,
                                  q->params, NULL, NULL, 0))
    {
        ngx_dr_pg_lost(conn, "sending a query");
        return;
    }

    if (ngx_dr_pg_flush(conn) != NGX_OK) {
        ngx_dr_pg_lost(conn, "sending a query");
    }
}


/*
 * A statement prepared here runs by its name; one that is not yet is
 * prepared and run in one round trip: Parse, Bind and Execute, then Sync,
 * in pipeline mode.  A statement is known as prepared only once its
 * pipeline has succeeded; after a failure its name is not used again
 * (the names are never reused, so a Parse that did succeed is harmless).
 */

static ngx_int_t
ngx_dr_pg_send_prepared(ngx_dr_pg_conn_t *conn, ngx_dr_pg_query_t *q)
{
    char        name[NGX_INT_T_LEN + 4];
    ngx_uint_t  i;

    for (i = 0; i < conn->nprepared; i++) {
        if (conn->prepared[i] == q->sql) {
            (void) ngx_sprintf((u_char *) name, "dr%ui%Z", i);

            return PQsendQueryPrepared(conn->pg, name, q->nparams,
                                       q->params, NULL, NULL, 0)
                   ? NGX_OK : NGX_ERROR;
        }
    }

    if (conn->nprepared == NGX_DR_PG_PREPARED) {
        /* every name is taken: run it as any other */
        return PQsendQueryParams(conn->pg, q->sql, q->nparams, NULL,
                                 q->params, NULL, NULL, 0)
               ? NGX_OK : NGX_ERROR;
    }

    (void) ngx_sprintf((u_char *) name, "dr%ui%Z", conn->nprepared);

    if (!PQenterPipelineMode(conn->pg)) {
        return NGX_ERROR;
    }

    conn->pipeline = 1;

    if (!PQsendPrepare(conn->pg, name, q->sql, q->nparams, NULL)
        || !PQsendQueryPrepared(conn->pg, name, q->nparams, q->params,
                                NULL, NULL, 0)
        || !PQpipelineSync(conn->pg))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * PQflush() may leave data in libpq's buffer when the socket is full;
 * write readiness is then watched until it has all gone, and only then,
 * since a level-triggered write event would otherwise fire without end.
 */

static ngx_int_t
ngx_dr_pg_flush(ngx_dr_pg_conn_t *conn)
{
    switch (PQflush(conn->pg)) {

    case 0:
        conn->flushing = 0;
        conn->c->log->action = "reading a result from PostgreSQL";
        return ngx_dr_pg_watch(conn, 1, 0);

    case 1:
        return ngx_dr_pg_watch(conn, 1, 1);

    default:
        return NGX_ERROR;
    }
}


static void
ngx_dr_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;
    ngx_dr_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (c->close) {
        /* worker_shutdown_timeout: nginx asks every connection to close */
        ngx_dr_pg_exiting = 1;

        if (conn->query) {
            ngx_dr_pg_fail(conn->query, NGX_DR_PG_UNAVAILABLE,
                           "nginx is shutting down",
                           sizeof("nginx is shutting down") - 1);
        }

        ngx_dr_pg_close(conn);
        return;
    }

    switch (conn->state) {

    case NGX_DR_PG_CONNECTING:
        ngx_dr_pg_connect_poll(conn);
        return;

    case NGX_DR_PG_IDLE:
    case NGX_DR_PG_BUSY:
        ngx_dr_pg_read(conn);
        return;

    default:
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "event on a closed PostgreSQL connection");
        return;
    }
}


static void
ngx_dr_pg_read(ngx_dr_pg_conn_t *conn)
{
    PGconn      *pg;
    PGresult    *res;
    PGnotify    *notify;
    ngx_uint_t   nulls;

    pg = conn->pg;
    nulls = 0;

    if (!PQconsumeInput(pg)) {
        ngx_dr_pg_lost(conn, "reading");
        return;
    }

    if (conn->flushing && ngx_dr_pg_flush(conn) != NGX_OK) {
        ngx_dr_pg_lost(conn, "sending a query");
        return;
    }

    while ((notify = PQnotifies(pg)) != NULL) {
        ngx_dr_pg_listen_notify(notify);
        PQfreemem(notify);
    }

    if (conn->state == NGX_DR_PG_IDLE) {
        if (PQstatus(pg) == CONNECTION_BAD) {
            ngx_dr_pg_lost(conn, "waiting");
        }

        return;
    }

    while (!conn->flushing && !PQisBusy(pg)) {
        res = PQgetResult(pg);

        if (conn->pipeline) {
            /* a NULL ends each statement's results; the Sync, all */

            if (res == NULL) {
                if (nulls++) {
                    /* nothing more to read now: wait for the socket */
                    return;
                }

                continue;
            }

            nulls = 0;

            if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
                PQclear(res);
                ngx_dr_pg_prepared(conn);

                if (!PQexitPipelineMode(pg)) {
                    ngx_dr_pg_lost(conn, "leaving pipeline mode");
                    return;
                }

                ngx_dr_pg_complete(conn);
                return;
            }

            if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
                /* after the error that aborted it, which wins */
                PQclear(res);
                continue;
            }
        }

        if (res == NULL) {
            ngx_dr_pg_complete(conn);
            return;
        }

        /* of several results the first error wins, else the last one */

        if (conn->res == NULL) {
            conn->res = res;

        } else if (PQresultStatus(conn->res) != PGRES_FATAL_ERROR) {
            PQclear(conn->res);
            conn->res = res;

        } else {
            PQclear(res);
        }
    }
}


/*
 * The pipeline of a first execution has ended: its name is used up,
 * and known as the statement's only when nothing failed.
 */

static void
ngx_dr_pg_prepared(ngx_dr_pg_conn_t *conn)
{
    conn->pipeline = 0;

    conn->prepared[conn->nprepared] =
        (conn->query && conn->res
         && PQresultStatus(conn->res) != PGRES_FATAL_ERROR)
        ? conn->query->sql : NULL;

    conn->nprepared++;
}


static void
ngx_dr_pg_complete(ngx_dr_pg_conn_t *conn)
{
    char                *msg;
    PGresult            *res;
    ngx_uint_t           rc, i;
    ExecStatusType       status;
    ngx_dr_pg_query_t   *q;
    ngx_dr_pg_server_t  *s;

    s = conn->server;
    q = conn->query;
    res = conn->res;

    conn->query = NULL;
    conn->res = NULL;
    conn->state = NGX_DR_PG_IDLE;
    conn->c->log->action = "waiting on an idle PostgreSQL connection";

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (PQtransactionStatus(conn->pg) != PQTRANS_IDLE) {
        /* never hand a connection inside a transaction to another query */
        ngx_log_error(NGX_LOG_WARN, &s->log, 0,
                      "PostgreSQL %V: a query left its transaction open, "
                      "closing the connection", &s->conf->name);
        ngx_dr_pg_close(conn);
    }

    if (conn->listener) {
        ngx_log_error(NGX_LOG_INFO, &s->log, 0,
                      "PostgreSQL %V: listening for notifications",
                      &s->conf->name);

        ngx_dr_pg_listening = 1;

        if (res) {
            PQclear(res);
        }

        /* now listening: whatever was published before is unknown */

        for (i = 0; i < ngx_dr_pg_nchannels; i++) {
            ngx_dr_pg_channels[i].handler(NULL, NULL,
                                          ngx_dr_pg_channels[i].data);
        }

    } else if (q == NULL) {
        /* orphaned: its request went away */
        if (res) {
            PQclear(res);
        }

    } else if (res == NULL) {
        ngx_dr_pg_fail(q, NGX_DR_PG_FAILED, "empty result",
                       sizeof("empty result") - 1);

    } else {
        status = PQresultStatus(res);

        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
            rc = NGX_DR_PG_OK;
            msg = NULL;

        } else {
            rc = ngx_dr_pg_unavailable(res) ? NGX_DR_PG_UNAVAILABLE
                                            : NGX_DR_PG_FAILED;
            msg = PQresultErrorMessage(res);
            ngx_dr_pg_set_error(s, msg);

            ngx_log_error(NGX_LOG_ERR, q->log, 0,
                          "PostgreSQL %V: query failed: %*s",
                          &s->conf->name, s->error_len, s->error);
        }

        if (msg && rc == NGX_DR_PG_UNAVAILABLE) {
            ngx_dr_pg_fail(q, rc, "the database cannot answer now",
                           sizeof("the database cannot answer now") - 1);
            PQclear(res);

        } else if (msg) {
            ngx_dr_pg_fail(q, rc, "the database refused the query",
                           sizeof("the database refused the query") - 1);
            PQclear(res);

        } else {
            q->res = res;
            ngx_dr_pg_fail(q, rc, NULL, 0);
        }
    }

    ngx_dr_pg_dispatch(s);
}


static void
ngx_dr_pg_lost(ngx_dr_pg_conn_t *conn, const char *what)
{
    const char          *msg;
    ngx_dr_pg_query_t   *q;
    ngx_dr_pg_server_t  *s;

    s = conn->server;
    q = conn->query;
    msg = PQerrorMessage(conn->pg);

    ngx_dr_pg_set_error(s, msg[0] ? msg : "connection lost");

    ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                  "PostgreSQL %V (%V): connection lost while %s: %*s",
                  &s->conf->name, &s->conf->where, what,
                  s->error_len, s->error);

    ngx_dr_pg_close(conn);

    if (q) {
        ngx_dr_pg_fail(q, NGX_DR_PG_UNAVAILABLE, "database connection lost",
                       sizeof("database connection lost") - 1);
    }

    ngx_dr_pg_dispatch(s);
}


static void
ngx_dr_pg_timer_handler(ngx_event_t *ev)
{
    ngx_dr_pg_conn_t    *conn;
    ngx_dr_pg_server_t  *s;

    conn = ev->data;
    s = conn->server;

    if (conn->state == NGX_DR_PG_CLOSED && conn->listener) {
        /* time to reconnect the listener */
        if (ngx_dr_pg_connect(conn) != NGX_OK) {
            return;
        }

        return;
    }

    if (conn->state == NGX_DR_PG_CONNECTING) {
        ngx_dr_pg_connect_failed(conn, "connect timed out");

    } else {
        ngx_log_error(NGX_LOG_WARN, &s->log, 0,
                      "PostgreSQL %V: an abandoned query did not end in "
                      "time, closing its connection", &s->conf->name);
        ngx_dr_pg_close(conn);
    }

    ngx_dr_pg_dispatch(s);
}


/* the nginx side of libpq's socket */


static ngx_int_t
ngx_dr_pg_watch(ngx_dr_pg_conn_t *conn, ngx_uint_t rd, ngx_uint_t wr)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    c = conn->c;

    if (c == NULL) {
        fd = PQsocket(conn->pg);
        if (fd == (ngx_socket_t) -1) {
            return NGX_ERROR;
        }

        c = ngx_get_connection(fd, &conn->log);
        if (c == NULL) {
            return NGX_ERROR;
        }

        c->data = conn;
        c->read->handler = ngx_dr_pg_event_handler;
        c->write->handler = ngx_dr_pg_event_handler;
        c->read->log = c->log;
        c->write->log = c->log;
        c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
        c->log->action = "connecting to PostgreSQL";

        conn->c = c;
    }

    if (rd && !c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!rd && c->read->active) {
        if (ngx_del_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (wr && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!wr && c->write->active) {
        if (ngx_del_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Takes a socket another library owns out of the event loop and gives its
 * nginx connection back, without closing the descriptor.  With
 * NGX_CLOSE_EVENT the owner closes it next, so the kernel drops the
 * registration by itself and no system call is needed.
 */

void
ngx_dr_release_connection(ngx_connection_t *c, ngx_uint_t flags)
{
    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


/*
 * Takes the socket out of the event loop and gives the nginx connection
 * back, without closing the descriptor: it is libpq's.  "closing" says
 * libpq closes (or has closed) it next, so the kernel drops the
 * registration by itself and no system call is needed.
 */

static void
ngx_dr_pg_unwatch(ngx_dr_pg_conn_t *conn, ngx_uint_t closing)
{
    ngx_connection_t  *c;

    c = conn->c;

    if (c == NULL) {
        return;
    }

    ngx_dr_release_connection(c, closing ? NGX_CLOSE_EVENT : 0);

    conn->c = NULL;
}


static void
ngx_dr_pg_close(ngx_dr_pg_conn_t *conn)
{
    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    ngx_dr_pg_unwatch(conn, 1);

    if (conn->res) {
        PQclear(conn->res);
        conn->res = NULL;
    }

    if (conn->pg) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }

    conn->query = NULL;
    conn->flushing = 0;
    conn->pipeline = 0;
    conn->nprepared = 0;
    conn->state = NGX_DR_PG_CLOSED;

    if (conn->listener) {
        /* notifications are lost until it listens again */
        ngx_dr_pg_listening = 0;
    }

    if (conn->listener && !ngx_dr_pg_exiting && !ngx_exiting) {
        /* with jitter: nodes restarted together do not come back as one */
        ngx_add_timer(&conn->timer,
                      ngx_min(NGX_DR_PG_BACKOFF_MIN
                              << ngx_min(conn->server->failures, 5),
                              NGX_DR_PG_BACKOFF_MAX)
                      + (ngx_msec_t) ngx_random() % NGX_DR_PG_BACKOFF_MIN);
    }
}


/* outcomes */


static void
ngx_dr_pg_fail(ngx_dr_pg_query_t *q, ngx_uint_t rc, const char *error,
    size_t len)
{
    q->rc = rc;

    if (error) {
        q->error.data = ngx_pnalloc(q->pool, len);
        if (q->error.data) {
            ngx_memcpy(q->error.data, error, len);
            q->error.len = len;
        }
    }

    ngx_dr_pg_post(q);
}


static void
ngx_dr_pg_post(ngx_dr_pg_query_t *q)
{
    if (q->event.timer_set) {
        ngx_del_timer(&q->event);
    }

    q->state = NGX_DR_PG_Q_POSTED;
    q->conn = NULL;
    q->event.handler = ngx_dr_pg_query_done;
    ngx_post_event(&q->event, &ngx_posted_events);
}


static void
ngx_dr_pg_query_timeout(ngx_event_t *ev)
{
    ngx_dr_pg_conn_t    *conn;
    ngx_dr_pg_query_t   *q;
    ngx_dr_pg_server_t  *s;

    q = ev->data;
    s = q->server;

    if (q->state == NGX_DR_PG_Q_WAITING) {
        ngx_queue_remove(&q->queue);
        s->nwaiting--;

        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "PostgreSQL %V: no connection within %M ms",
                      &s->conf->name, q->timeout);

        ngx_dr_pg_fail(q, NGX_DR_PG_UNAVAILABLE,
                       "timed out waiting for a database connection",
                       sizeof("timed out waiting for a database connection")
                       - 1);
        return;
    }

    /* sent: the connection is stuck, give it up */

    conn = q->conn;

    ngx_log_error(NGX_LOG_ERR, q->log, 0,
                  "PostgreSQL %V: query timed out after %M ms",
                  &s->conf->name, q->timeout);

    conn->query = NULL;
    ngx_dr_pg_close(conn);

    ngx_dr_pg_fail(q, NGX_DR_PG_UNAVAILABLE, "database query timed out",
                   sizeof("database query timed out") - 1);

    ngx_dr_pg_dispatch(s);
}


static void
ngx_dr_pg_query_done(ngx_event_t *ev)
{
    PGresult           *res;
    ngx_dr_pg_query_t  *q;

    q = ev->data;
    res = q->res;

    q->state = NGX_DR_PG_Q_DONE;

    ngx_dr_counters_pg_query(q->rc, ngx_current_msec - q->start);

    /* the handler may free the pool q lives in */
    q->handler(q);

    if (res) {
        PQclear(res);
    }
}


/* LISTEN/NOTIFY */


ngx_int_t
ngx_dr_pg_listen(const char *channel, ngx_dr_pg_notify_pt handler,
    void *data)
{
    ngx_dr_pg_channel_t  *ch;

    if (ngx_dr_pg_nchannels == NGX_DR_PG_CHANNELS) {
        return NGX_ERROR;
    }

    ch = &ngx_dr_pg_channels[ngx_dr_pg_nchannels++];
    ch->channel = channel;
    ch->handler = handler;
    ch->data = data;

    return NGX_OK;
}


/* whether notifications reach this worker now */

ngx_uint_t
ngx_dr_pg_listening_now(void)
{
    return ngx_dr_pg_listening;
}


/*
 * Opens the listening connection of this node; it reconnects by itself,
 * with the pool's back-off, whenever it is lost.
 */

ngx_int_t
ngx_dr_pg_listen_start(void)
{
    ngx_dr_pg_conn_t  *conn;

    if (ngx_dr_pg_primary == NULL || ngx_dr_pg_nchannels == 0) {
        return NGX_OK;
    }

    conn = &ngx_dr_pg_listener;
    ngx_memzero(conn, sizeof(ngx_dr_pg_conn_t));

    conn->server = ngx_dr_pg_primary;
    conn->listener = 1;
    conn->log = ngx_dr_pg_primary->log;
    conn->timer.handler = ngx_dr_pg_timer_handler;
    conn->timer.data = conn;
    conn->timer.log = &conn->log;
    conn->timer.cancelable = 1;

    if (ngx_dr_pg_connect(conn) != NGX_OK) {
        /* closed, and a retry is scheduled */
        return NGX_OK;
    }

    return NGX_OK;
}


static void
ngx_dr_pg_listen_connect(ngx_dr_pg_conn_t *conn)
{
    u_char       *p;
    ngx_uint_t    i;
    u_char        sql[NGX_DR_PG_CHANNELS * 72];

    /* channel names are constants of the module, never request data */

    p = sql;

    for (i = 0; i < ngx_dr_pg_nchannels; i++) {
        p = ngx_slprintf(p, sql + sizeof(sql) - 1, "LISTEN %s;",
                         ngx_dr_pg_channels[i].channel);
    }

    *p = '\0';

    conn->state = NGX_DR_PG_BUSY;
    conn->flushing = 1;

    if (!PQsendQuery(conn->pg, (char *) sql)
        || ngx_dr_pg_flush(conn) != NGX_OK)
    {
        ngx_dr_pg_lost(conn, "sending LISTEN");
        return;
    }

}


static void
ngx_dr_pg_listen_notify(PGnotify *notify)
{
    ngx_str_t             channel, payload;
    ngx_uint_t            i;
    ngx_dr_pg_channel_t  *ch;

    channel.data = (u_char *) notify->relname;
    channel.len = ngx_strlen(notify->relname);
    payload.data = (u_char *) notify->extra;
    payload.len = notify->extra ? ngx_strlen(notify->extra) : 0;

    for (i = 0; i < ngx_dr_pg_nchannels; i++) {
        ch = &ngx_dr_pg_channels[i];

        if (ngx_strcmp(ch->channel, notify->relname) == 0) {
            ch->handler(&channel, &payload, ch->data);
        }
    }
}


/* helpers */


static void
ngx_dr_pg_notice(void *arg, const char *message)
{
    ngx_dr_pg_server_t  *s = arg;

    ngx_dr_pg_set_error(s, message);

    ngx_log_error(NGX_LOG_INFO, &s->log, 0, "PostgreSQL %V: %*s",
                  &s->conf->name, s->error_len, s->error);
}


/*
 * Keeps the last error of a server for its log lines, on one line: libpq
 * writes several, with tabs.  Clients are told only a generic sentence,
 * since the details name hosts and paths of the infrastructure.
 */

static void
ngx_dr_pg_set_error(ngx_dr_pg_server_t *s, const char *msg)
{
    u_char      *p, *last;
    const char  *end;

    /*
     * Runs of new lines and tabs become one space, so the copy is bounded
     * by both the message and the room: a message with such runs is
     * longer than its copy.
     */

    end = msg + ngx_dr_pg_trim(msg);
    p = s->error;
    last = s->error + NGX_DR_PG_ERRLEN;

    for ( /* void */ ; msg < end && p < last; msg++) {
        if (*msg == '\n' || *msg == '\t') {
            if (p > s->error && p[-1] != ' ') {
                *p++ = ' ';
            }

            continue;
        }

        *p++ = *msg;
    }

    s->error_len = p - s->error;
}


/*
 * Errors that say the server cannot serve now, not that the query is
 * wrong: cancelled (statement_timeout), conflicts with recovery on a
 * replica, lack of resources, operator intervention, connection trouble.
 */

static ngx_uint_t
ngx_dr_pg_unavailable(PGresult *res)
{
    char  *state;

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (state == NULL) {
        return 1;
    }

    return ngx_strncmp(state, "53", 2) == 0
           || ngx_strncmp(state, "57", 2) == 0
           || ngx_strncmp(state, "08", 2) == 0
           || ngx_strcmp(state, "40001") == 0;
}


/* libpq's messages end with a new line, sometimes two */

static size_t
ngx_dr_pg_trim(const char *msg)
{
    size_t  len;

    len = ngx_strlen(msg);

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }

    return len;
}


/*
 * Domain Runner: HTTPS calls to the LLM providers, through libcurl multi
 * driven by nginx's event loop.
 *
 * One multi handle per worker.  The sockets are the module's: libcurl
 * asks for one through CURLOPT_OPENSOCKETFUNCTION and gives it back through
 * CURLOPT_CLOSESOCKETFUNCTION, and in between each is watched through an
 * nginx connection, registered level-triggered for what libcurl's socket
 * callback asks.  libcurl's timer becomes an nginx timer.  Events call
 * curl_multi_socket_action(); libcurl is never called from inside one of
 * its own callbacks, and outcomes reach callers through posted events.
 * TLS peers are verified; connections are reused, over HTTP/2 where the
 * provider offers it; names are resolved by libcurl's resolver thread,
 * never by the worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_dr_llm.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_pg.h"
#include "ngx_dr_provider.h"
#include "ngx_dr_validate.h"


#define NGX_DR_LLM_NEW        0
#define NGX_DR_LLM_RUNNING    1
#define NGX_DR_LLM_POSTED     2
#define NGX_DR_LLM_DONE       3


static int ngx_dr_llm_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp);
static int ngx_dr_llm_timer(CURLM *multi, long timeout_ms, void *userp);
static curl_socket_t ngx_dr_llm_open(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *address);
static int ngx_dr_llm_close(void *clientp, curl_socket_t s);
static size_t ngx_dr_llm_write(char *ptr, size_t size, size_t n,
    void *userdata);
static size_t ngx_dr_llm_header(char *ptr, size_t size, size_t n,
    void *userdata);
static void ngx_dr_llm_event(ngx_event_t *ev);
static void ngx_dr_llm_timeout(ngx_event_t *ev);
static void ngx_dr_llm_finished(void);
static void ngx_dr_llm_done(ngx_event_t *ev);
static void ngx_dr_llm_cleanup(void *data);
static ngx_connection_t *ngx_dr_llm_conn(curl_socket_t s);
static char *ngx_dr_llm_base(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_dr_provider_t *pr, ngx_str_t *value);
static char *ngx_dr_llm_key_env(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_dr_provider_t *pr, ngx_str_t *value);
static char *ngx_dr_llm_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_dr_provider_t *pr, ngx_str_t *value);
static ngx_int_t ngx_dr_llm_key_add(ngx_conf_t *cf, ngx_dr_provider_t *pr,
    u_char *data, size_t len);
static char *ngx_dr_llm_defaults(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_dr_provider_t *pr);
static char *ngx_dr_llm_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value);


static CURLM         *ngx_dr_llm_multi;
static ngx_event_t    ngx_dr_llm_timer_event;
static ngx_log_t     *ngx_dr_llm_log;
static ngx_uint_t     ngx_dr_llm_running;

/* the eight providers of the original system, for what is not given */
typedef struct {
    const char               *name;
    ngx_uint_t                format;
    const char               *base;
    ngx_uint_t                rpm;
} ngx_dr_llm_known_t;

static ngx_dr_llm_known_t  ngx_dr_llm_known[] = {
    { "openai", NGX_DR_FORMAT_OPENAI, "https://api.openai.com/v1", 500 },
    { "anthropic", NGX_DR_FORMAT_ANTHROPIC, "https://api.anthropic.com", 50 },
    { "google", NGX_DR_FORMAT_GEMINI,
      "https://generativelanguage.googleapis.com", 60 },
    { "mistral", NGX_DR_FORMAT_OPENAI, "https://api.mistral.ai/v1", 100 },
    { "deepseek", NGX_DR_FORMAT_OPENAI, "https://api.deepseek.com", 60 },
    { "together", NGX_DR_FORMAT_OPENAI, "https://api.together.xyz/v1", 60 },
    { "xai", NGX_DR_FORMAT_OPENAI, "https://api.x.ai/v1", 60 },
    { "perplexity", NGX_DR_FORMAT_OPENAI, "https://api.perplexity.ai", 20 },
    { NULL, 0, NULL, 0 }
};


/* the nginx connection of each socket libcurl opened, by descriptor */
static ngx_connection_t  **ngx_dr_llm_conns;
static ngx_uint_t          ngx_dr_llm_nconns;


ngx_int_t
ngx_dr_llm_init_process(ngx_cycle_t *cycle)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "curl_global_init() failed");
        return NGX_ERROR;
    }

    ngx_dr_llm_multi = curl_multi_init();
    if (ngx_dr_llm_multi == NULL) {
        return NGX_ERROR;
    }

    ngx_dr_llm_log = cycle->log;
    ngx_dr_llm_nconns = cycle->files_n ? cycle->files_n : 65536;

    ngx_dr_llm_conns = ngx_pcalloc(cycle->pool,
                           ngx_dr_llm_nconns * sizeof(ngx_connection_t *));
    if (ngx_dr_llm_conns == NULL) {
        return NGX_ERROR;
    }

    ngx_dr_llm_timer_event.handler = ngx_dr_llm_timeout;
    ngx_dr_llm_timer_event.log = cycle->log;
    ngx_dr_llm_timer_event.cancelable = 1;

    curl_multi_setopt(ngx_dr_llm_multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_dr_llm_socket);
    curl_multi_setopt(ngx_dr_llm_multi, CURLMOPT_TIMERFUNCTION,
                      ngx_dr_llm_timer);

    /* many calls share few connections; HTTP/2 multiplexes them */
    curl_multi_setopt(ngx_dr_llm_multi, CURLMOPT_PIPELINING,
                      (long) CURLPIPE_MULTIPLEX);
    curl_multi_setopt(ngx_dr_llm_multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      4096L);

    return NGX_OK;
}


void
ngx_dr_llm_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t         s, left;
    ngx_connection_t  *c;

    left = 0;

    if (ngx_dr_llm_multi == NULL) {
        return;
    }

    if (ngx_dr_llm_timer_event.timer_set) {
        ngx_del_timer(&ngx_dr_llm_timer_event);
    }

    /* closes the cached connections through the close callback */
    curl_multi_cleanup(ngx_dr_llm_multi);
    ngx_dr_counters_in_flight(0);
    ngx_dr_llm_multi = NULL;

    /*
     * A socket libcurl did not close through the callback (a transfer
     * it dropped as the worker left) would be an open socket left in a
     * connection, which nginx reports when a worker leaves: it is
     * closed here, libcurl being done with every socket.
     */
    for (s = 0; s < ngx_dr_llm_nconns; s++) {
        c = ngx_dr_llm_conns[s];

        if (c) {
            ngx_dr_llm_conns[s] = NULL;
            ngx_close_connection(c);
            left++;
        }
    }

    if (left) {
        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "%ui sockets of provider calls closed as the worker "
                      "exits", left);
    }

    curl_global_cleanup();
}


ngx_uint_t
ngx_dr_llm_in_flight(void)
{
    return ngx_dr_llm_running;
}


ngx_int_t
ngx_dr_llm_start(ngx_dr_llm_call_t *call)
{
    CURL                *easy;
    ngx_pool_cleanup_t  *cln;

    if (ngx_dr_llm_multi == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(call->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    easy = curl_easy_init();
    if (easy == NULL) {
        return NGX_ERROR;
    }

    call->easy = easy;
    call->start = ngx_current_msec;
    call->event.handler = ngx_dr_llm_done;
    call->event.data = call;
    call->event.log = call->log;

    cln->handler = ngx_dr_llm_cleanup;
    cln->data = call;

    curl_easy_setopt(easy, CURLOPT_URL, call->url);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, call);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t) call->body_len);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) call->timeout);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) ngx_min(call->timeout, 10000));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, call->error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ngx_dr_llm_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, ngx_dr_llm_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, ngx_dr_llm_open);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, ngx_dr_llm_close);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
                     (long) CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");

    if (curl_multi_add_handle(ngx_dr_llm_multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        call->easy = NULL;
        return NGX_ERROR;
    }

    call->state = NGX_DR_LLM_RUNNING;
    ngx_dr_llm_running++;
    ngx_dr_counters_in_flight(ngx_dr_llm_running);

    return NGX_OK;
}


void
ngx_dr_llm_cancel(ngx_dr_llm_call_t *call)
{
    switch (call->state) {

    case NGX_DR_LLM_RUNNING:
        /* removing a handle is allowed outside libcurl's callbacks */
        curl_multi_remove_handle(ngx_dr_llm_multi, call->easy);
        ngx_dr_llm_running--;
        ngx_dr_counters_in_flight(ngx_dr_llm_running);
        break;

    case NGX_DR_LLM_POSTED:
        if (call->event.posted) {
            ngx_delete_posted_event(&call->event);
        }

        break;

    default:
        return;
    }

    if (call->easy) {
        curl_easy_cleanup(call->easy);
        call->easy = NULL;
    }

    if (call->headers) {
        curl_slist_free_all(call->headers);
        call->headers = NULL;
    }

    call->state = NGX_DR_LLM_DONE;
}


static void
ngx_dr_llm_cleanup(void *data)
{
    ngx_dr_llm_cancel(data);
}


/* libcurl's callbacks: nginx events and timers only, never libcurl */


static curl_socket_t
ngx_dr_llm_open(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *address)
{
    ngx_socket_t  s;

    s = ngx_socket(address->family, address->socktype, address->protocol);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_dr_llm_log, ngx_socket_errno,
                      ngx_socket_n " for a provider call failed");
        return CURL_SOCKET_BAD;
    }

    if ((ngx_uint_t) s >= ngx_dr_llm_nconns) {
        ngx_log_error(NGX_LOG_ALERT, ngx_dr_llm_log, 0,
                      "socket %d beyond the %ui descriptors expected",
                      s, ngx_dr_llm_nconns);
        (void) ngx_close_socket(s);
        return CURL_SOCKET_BAD;
    }

    return s;
}


static int
ngx_dr_llm_close(void *clientp, curl_socket_t s)
{
    ngx_connection_t  *c;

    c = ngx_dr_llm_conn(s);

    if (c) {
        ngx_dr_release_connection(c, NGX_CLOSE_EVENT);
        ngx_dr_llm_conns[s] = NULL;
    }

    if (ngx_close_socket(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_dr_llm_log, ngx_socket_errno,
                      ngx_close_socket_n " of a provider call failed");
    }

    return 0;
}


static int
ngx_dr_llm_socket(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
    ngx_connection_t  *c;

    c = ngx_dr_llm_conn(s);

    if (c == NULL) {
        if (what == CURL_POLL_REMOVE) {
            return 0;
        }

        c = ngx_get_connection(s, ngx_dr_llm_log);
        if (c == NULL) {
            return -1;
        }

        c->read->handler = ngx_dr_llm_event;
        c->write->handler = ngx_dr_llm_event;
        c->read->log = c->log;
        c->write->log = c->log;
        c->log->action = "talking to an LLM provider";

        ngx_dr_llm_conns[s] = c;
    }

    if ((what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        && !c->read->active)
    {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return -1;
        }

    } else if (!(what == CURL_POLL_IN || what == CURL_POLL_INOUT)
               && c->read->active)
    {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if ((what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        && !c->write->active)
    {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return -1;
        }

    } else if (!(what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
               && c->write->active)
    {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


static int
ngx_dr_llm_timer(CURLM *multi, long timeout_ms, void *userp)
{
    if (timeout_ms < 0) {
        if (ngx_dr_llm_timer_event.timer_set) {
            ngx_del_timer(&ngx_dr_llm_timer_event);
        }

        return 0;
    }

    /* 0 means now: the next turn of the loop, outside this callback */
    ngx_add_timer(&ngx_dr_llm_timer_event, (ngx_msec_t) timeout_ms);

    return 0;
}


static size_t
ngx_dr_llm_write(char *ptr, size_t size, size_t n, void *userdata)
{
    ngx_dr_llm_call_t  *call = userdata;

    u_char  *p;
    size_t   len, want;

    len = size * n;

    if (call->response.len + len > call->max_response) {
        /* too large: the transfer ends with CURLE_WRITE_ERROR */
        call->too_large = 1;
        return 0;
    }

    if (call->response.len + len > call->size) {
        want = ngx_max(call->size * 2, call->response.len + len);
        want = ngx_min(want, call->max_response);

        p = ngx_pnalloc(call->pool, want);
        if (p == NULL) {
            return 0;
        }

        if (call->response.len) {
            ngx_memcpy(p, call->response.data, call->response.len);
        }

        call->response.data = p;
        call->size = want;
    }

    ngx_memcpy(call->response.data + call->response.len, ptr, len);
    call->response.len += len;

    return len;
}


static size_t
ngx_dr_llm_header(char *ptr, size_t size, size_t n, void *userdata)
{
    ngx_dr_llm_call_t  *call = userdata;

    size_t   len, vlen;
    u_char  *v;

    len = size * n;

    /* the bundled simulator says so: what it answers is stored as such */
    if (len > sizeof("x-provider-simulator:") - 1
        && ngx_strncasecmp((u_char *) ptr,
                           (u_char *) "x-provider-simulator:",
                           sizeof("x-provider-simulator:") - 1) == 0)
    {
        call->simulated = 1;
    }

    if (len > sizeof("retry-after:") - 1
        && ngx_strncasecmp((u_char *) ptr, (u_char *) "retry-after:",
                           sizeof("retry-after:") - 1) == 0)
    {
        v = (u_char *) ptr + sizeof("retry-after:") - 1;
        vlen = len - (sizeof("retry-after:") - 1);

        while (vlen && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }

        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'
                        || v[vlen - 1] == ' '))
        {
            vlen--;
        }

        vlen = ngx_min(vlen, sizeof(call->retry_after) - 1);
        ngx_memcpy(call->retry_after, v, vlen);
        call->retry_after[vlen] = '\0';
    }

    return len;
}


/* nginx's side */


static void
ngx_dr_llm_event(ngx_event_t *ev)
{
    int                running;
    ngx_connection_t  *c;

    c = ev->data;

    (void) curl_multi_socket_action(ngx_dr_llm_multi, c->fd,
                                    ev->write ? CURL_CSELECT_OUT
                                              : CURL_CSELECT_IN,
                                    &running);

    ngx_dr_llm_finished();
}


static void
ngx_dr_llm_timeout(ngx_event_t *ev)
{
    int  running;

    (void) curl_multi_socket_action(ngx_dr_llm_multi, CURL_SOCKET_TIMEOUT, 0,
                                    &running);

    ngx_dr_llm_finished();
}


/* transfers libcurl has finished leave the multi and are posted */

static void
ngx_dr_llm_finished(void)
{
    int                 left;
    CURL               *easy;
    CURLMsg            *msg;
    ngx_dr_llm_call_t  *call;

    while ((msg = curl_multi_info_read(ngx_dr_llm_multi, &left)) != NULL) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        call = NULL;

        (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &call);

        call->result = msg->data.result;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE,
                                 &call->status);

        curl_multi_remove_handle(ngx_dr_llm_multi, easy);
        curl_easy_cleanup(easy);
        call->easy = NULL;

        if (call->headers) {
            curl_slist_free_all(call->headers);
            call->headers = NULL;
        }

        ngx_dr_llm_running--;
        ngx_dr_counters_in_flight(ngx_dr_llm_running);

        call->latency = ngx_current_msec - call->start;
        call->state = NGX_DR_LLM_POSTED;
        ngx_post_event(&call->event, &ngx_posted_events);
    }
}


static void
ngx_dr_llm_done(ngx_event_t *ev)
{
    ngx_dr_llm_call_t  *call;

    call = ev->data;
    call->state = NGX_DR_LLM_DONE;

    if (call->too_large) {
        (void) ngx_cpystrn((u_char *) call->error,
                           (u_char *) "the answer is larger than allowed",
                           sizeof(call->error));

    } else if (call->result != CURLE_OK && call->error[0] == '\0') {
        (void) ngx_cpystrn((u_char *) call->error,
                           (u_char *) curl_easy_strerror(call->result),
                           sizeof(call->error));
    }

    /* the handler may free the pool the call lives in */
    call->done(call);
}


static ngx_connection_t *
ngx_dr_llm_conn(curl_socket_t s)
{
    if (s < 0 || (ngx_uint_t) s >= ngx_dr_llm_nconns) {
        return NULL;
    }

    return ngx_dr_llm_conns[s];
}


/*
 * dr_provider name=N [format=openai|anthropic|gemini] [base=URL]
 *     model=M [model=M ...] key_env=VAR[,VAR] | key_file=PATH
 *     [rpm=N] [tpm=N] [concurrency=N];
 *
 * Keys are read here, in the master, from the environment or from files
 * only their owner may read; they never appear in the configuration, so
 * "nginx -T" cannot show them.
 */

char *
ngx_dr_llm_provider(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_array_t  **providers = (ngx_array_t **) ((char *) conf + cmd->offset);

    ngx_int_t           num;
    ngx_str_t          *value, *model;
    ngx_uint_t          i;
    ngx_dr_format_t     format;
    ngx_dr_provider_t  *pr;

    if (*providers == NULL) {
        *providers = ngx_array_create(cf->pool, 8, sizeof(ngx_dr_provider_t));
        if (*providers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    pr = ngx_array_push(*providers);
    if (pr == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(pr, sizeof(ngx_dr_provider_t));
    pr->index = (*providers)->nelts - 1;
    pr->format = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&pr->models, cf->pool, 4, sizeof(ngx_str_t)) != NGX_OK
        || ngx_array_init(&pr->keys, cf->pool, 2, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "name=", 5) == 0) {
            pr->name.data = value[i].data + 5;
            pr->name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "format=", 7) == 0) {
            if (ngx_dr_provider_format((char *) value[i].data + 7, &format)
                != 0)
            {
                goto invalid;
            }

            pr->format = format;
            continue;
        }

        if (ngx_strncmp(value[i].data, "base=", 5) == 0) {
            if (ngx_dr_llm_base(cf, cmd, pr, &value[i]) != NGX_CONF_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "model=", 6) == 0
            && value[i].len > 6)
        {
            model = ngx_array_push(&pr->models);
            if (model == NULL) {
                return NGX_CONF_ERROR;
            }

            model->data = value[i].data + 6;
            model->len = value[i].len - 6;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key_env=", 8) == 0) {
            if (ngx_dr_llm_key_env(cf, cmd, pr, &value[i]) != NGX_CONF_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "key_file=", 9) == 0) {
            if (ngx_dr_llm_key_file(cf, cmd, pr, &value[i]) != NGX_CONF_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "rpm=", 4) == 0) {
            num = ngx_atoi(value[i].data + 4, value[i].len - 4);
            if (num <= 0) {
                goto invalid;
            }

            pr->rpm = num;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tpm=", 4) == 0) {
            num = ngx_atoi(value[i].data + 4, value[i].len - 4);
            if (num < NGX_DR_LLM_TPM_MIN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" has an invalid \"%V\": tokens "
                                   "a minute are at least %d, enough for "
                                   "a call", &cmd->name, &value[i],
                                   NGX_DR_LLM_TPM_MIN);
                return NGX_CONF_ERROR;
            }

            pr->tpm = num;
            continue;
        }

        if (ngx_strncmp(value[i].data, "concurrency=", 12) == 0) {
            num = ngx_atoi(value[i].data + 12, value[i].len - 12);
            if (num <= 0) {
                goto invalid;
            }

            pr->concurrency = num;
            continue;
        }

        goto invalid;
    }

    if (pr->name.len == 0 || pr->models.nelts == 0 || pr->keys.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs name=, at least one model= and "
                           "a key (key_env= or key_file=)", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return ngx_dr_llm_defaults(cf, cmd, pr);

invalid:

    return ngx_dr_llm_invalid(cf, cmd, &value[i]);
}


static char *
ngx_dr_llm_invalid(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *value)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" has an invalid \"%V\": it takes name=, "
                       "format=openai|anthropic|gemini, base=, model=, "
                       "key_env=, key_file=, rpm=, tpm= and concurrency=",
                       &cmd->name, value);
    return NGX_CONF_ERROR;
}


/*
 * base=URL: https, or plain http to this machine only.  The URL is parsed
 * as libcurl will read it and its host compared whole: a prefix would
 * let "http://127.0.0.1@elsewhere/" or "http://127.0.0.1.elsewhere/"
 * carry a key in clear across the network.
 */

static char *
ngx_dr_llm_base(ngx_conf_t *cf, ngx_command_t *cmd, ngx_dr_provider_t *pr,
    ngx_str_t *value)
{
    int  rc, local;

    pr->base.data = value->data + sizeof("base=") - 1;
    pr->base.len = value->len - (sizeof("base=") - 1);

    rc = ngx_dr_validate_base_url(pr->base.data, pr->base.len, &local);

    if (rc != NGX_DR_VALID_OK) {
        /* not the URL itself: its user information may be a password */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" has an invalid \"base=\": %s; a provider "
                           "is called over https (plain http only on this "
                           "machine)", &cmd->name, ngx_dr_validate_reason(rc));
        return NGX_CONF_ERROR;
    }

    while (pr->base.len && pr->base.data[pr->base.len - 1] == '/') {
        pr->base.len--;
    }

    return NGX_CONF_OK;
}


/* key_env=VAR[,VAR]: the values of these variables of the environment */

static char *
ngx_dr_llm_key_env(ngx_conf_t *cf, ngx_command_t *cmd, ngx_dr_provider_t *pr,
    ngx_str_t *value)
{
    u_char     *p, *last, *start;
    char       *env;
    ngx_str_t   name;
    u_char      buf[4096];

    start = value->data + sizeof("key_env=") - 1;
    last = value->data + value->len;

    while (start < last) {
        p = ngx_strlchr(start, last, ',');
        if (p == NULL) {
            p = last;
        }

        name.data = start;
        name.len = p - start;
        start = p + 1;

        if (name.len == 0 || name.len >= sizeof(buf)) {
            return ngx_dr_llm_invalid(cf, cmd, value);
        }

        (void) ngx_cpystrn(buf, name.data, name.len + 1);
        env = getenv((char *) buf);

        if (env == NULL || env[0] == '\0') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": the environment has no %V for "
                               "provider \"%V\"", &cmd->name, &name,
                               &pr->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_dr_llm_key_add(cf, pr, (u_char *) env, ngx_strlen(env))
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * key_file=PATH: one key a line, of a file only its owner may read or
 * write (a group may hold more users than the one nginx runs as)
 */

static char *
ngx_dr_llm_key_file(ngx_conf_t *cf, ngx_command_t *cmd, ngx_dr_provider_t *pr,
    ngx_str_t *value)
{
    u_char           *p, *last, *start;
    ssize_t           n;
    ngx_int_t         rc;
    ngx_str_t         path;
    ngx_file_t        file;
    ngx_file_info_t   fi;
    u_char            buf[4096];

    path.data = value->data + sizeof("key_file=") - 1;
    path.len = value->len - (sizeof("key_file=") - 1);

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = path;
    file.log = cf->log;
    file.fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" cannot open \"%V\"", &cmd->name, &path);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\" cannot stat \"%V\"", &cmd->name, &path);
        (void) ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    if (fi.st_mode & (S_IRGRP|S_IWGRP|S_IROTH|S_IWOTH)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" may be read or written by "
                           "users other than its owner; make it readable "
                           "by its owner only (chmod 600)", &cmd->name,
                           &path);
        (void) ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_file(&file, buf, sizeof(buf) - 1, 0);
    (void) ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    rc = NGX_OK;
    start = buf;
    last = buf + n;

    while (rc == NGX_OK && start < last) {
        p = ngx_strlchr(start, last, '\n');
        if (p == NULL) {
            p = last;
        }

        while (p > start && (p[-1] == '\r' || p[-1] == ' ')) {
            p--;
        }

        if (p > start) {
            rc = ngx_dr_llm_key_add(cf, pr, start, p - start);
        }

        start = ngx_strlchr(start, last, '\n');
        start = start ? start + 1 : last;
    }

    ngx_explicit_memzero(buf, sizeof(buf));

    return (rc == NGX_OK) ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static ngx_int_t
ngx_dr_llm_key_add(ngx_conf_t *cf, ngx_dr_provider_t *pr, u_char *data,
    size_t len)
{
    ngx_str_t  *key;

    key = ngx_array_push(&pr->keys);
    if (key == NULL) {
        return NGX_ERROR;
    }

    key->len = len;
    key->data = ngx_pnalloc(cf->pool, len + 1);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(key->data, data, len + 1);

    return NGX_OK;
}


/* what was not given: that of a provider of the original system */

static char *
ngx_dr_llm_defaults(ngx_conf_t *cf, ngx_command_t *cmd, ngx_dr_provider_t *pr)
{
    ngx_dr_llm_known_t  *known;

    for (known = ngx_dr_llm_known; known->name; known++) {
        if (pr->name.len == ngx_strlen(known->name)
            && ngx_strncmp(pr->name.data, known->name, pr->name.len) == 0)
        {
            break;
        }
    }

    if (pr->format == NGX_CONF_UNSET_UINT) {
        if (known->name == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" needs format= for provider \"%V\"",
                               &cmd->name, &pr->name);
            return NGX_CONF_ERROR;
        }

        pr->format = known->format;
    }

    if (pr->base.len == 0) {
        if (known->name == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" needs base= for provider \"%V\"",
                               &cmd->name, &pr->name);
            return NGX_CONF_ERROR;
        }

        pr->base.data = (u_char *) known->base;
        pr->base.len = ngx_strlen(known->base);
    }

    if (pr->rpm == 0) {
        pr->rpm = known->name ? known->rpm : 60;
    }

    if (pr->concurrency == 0) {
        pr->concurrency = 64;
    }

    return NGX_CONF_OK;
}


ngx_dr_provider_t *
ngx_dr_llm_find(ngx_array_t *providers, u_char *name, size_t len)
{
    ngx_uint_t          i;
    ngx_dr_provider_t  *pr;

    if (providers == NULL) {
        return NULL;
    }

    pr = providers->elts;

    for (i = 0; i < providers->nelts; i++) {
        if (pr[i].name.len == len
            && ngx_strncmp(pr[i].name.data, name, len) == 0)
        {
            return &pr[i];
        }
    }

    return NULL;
}


ngx_uint_t
ngx_dr_llm_has_model(ngx_dr_provider_t *pr, u_char *model, size_t len)
{
    ngx_uint_t   i;
    ngx_str_t   *m;

    m = pr->models.elts;

    /* 1 + the model's index, or 0 when the provider does not serve it */

    for (i = 0; i < pr->models.nelts; i++) {
        if (m[i].len == len && ngx_strncmp(m[i].data, model, len) == 0) {
            return i + 1;
        }
    }

    return 0;
}


/*
 * The buckets of a provider's keys: a burst of a fiftieth of the minute's
 * allowance, refilled at the rest, so that no rolling minute ever holds
 * more than the provider allows and a steady crawl gets 98% of it; the
 * token budget's holds at least one call.
 */

void
ngx_dr_llm_tiers(ngx_dr_provider_t *pr, ngx_dr_llm_tiers_t *t)
{
    ngx_memzero(t, sizeof(ngx_dr_llm_tiers_t));

    t->calls.burst = ngx_max(pr->rpm / 50, 1);
    t->calls.rate = (pr->rpm > t->calls.burst) ? pr->rpm - t->calls.burst
                                                : 1;
    t->calls.period = 60000;

    if (pr->tpm) {
        t->tokens.burst = ngx_max(pr->tpm / 50, NGX_DR_LLM_TPM_BURST);
        t->tokens.rate = pr->tpm - t->tokens.burst;
        t->tokens.period = 60000;
    }
}


void
ngx_dr_llm_buckets(ngx_dr_provider_t *pr, ngx_uint_t key,
    ngx_dr_llm_buckets_t *b)
{
    b->calls.data = b->calls_name;
    b->calls.len = ngx_snprintf(b->calls_name, NGX_DR_LLM_BUCKET_LEN,
                                "p:%V:%ui", &pr->name, key)
                   - b->calls_name;

    b->tokens.data = b->tokens_name;
    b->tokens.len = ngx_snprintf(b->tokens_name, NGX_DR_LLM_BUCKET_LEN,
                                 "t:%V:%ui", &pr->name, key)
                    - b->tokens_name;
}


/*
 * Domain Runner: the module, its directives and the life of a worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"


static void *ngx_dr_create_main_conf(ngx_conf_t *cf);
static char *ngx_dr_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_dr_create_loc_conf(ngx_conf_t *cf);
static char *ngx_dr_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_dr_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_dr_conf_bounds(ngx_conf_t *cf, void *post, void *data);
static ngx_int_t ngx_dr_init_process(ngx_cycle_t *cycle);
static void ngx_dr_exit_process(ngx_cycle_t *cycle);


/* nginx's own bounds check does not name the directive; this one does */

static ngx_conf_num_bounds_t  ngx_dr_pool_size_bounds = {
    ngx_dr_conf_bounds, 1, 1024
};

static ngx_conf_num_bounds_t  ngx_dr_max_waiting_bounds = {
    ngx_dr_conf_bounds, 0, 1000000
};


static ngx_command_t  ngx_dr_commands[] = {

    { ngx_string("dr_pg"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_dr_pg_conninfo,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, pg),
      NULL },

    { ngx_string("dr_pg_replica"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_dr_pg_conninfo,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, pg),
      NULL },

    { ngx_string("dr_pg_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, pg.pool_size),
      &ngx_dr_pool_size_bounds },

    { ngx_string("dr_pg_max_waiting"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, pg.max_waiting),
      &ngx_dr_max_waiting_bounds },

    { ngx_string("dr_pg_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, pg.connect_timeout),
      NULL },

    { ngx_string("dr_pg_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, pg.query_timeout),
      NULL },

    { ngx_string("dr_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_dr_cache_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, cache),
      NULL },

    { ngx_string("dr_cors_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_dr_cors_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dr_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_dr_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_dr_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_dr_create_main_conf,               /* create main configuration */
    ngx_dr_init_main_conf,                 /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_dr_create_loc_conf,                /* create location configuration */
    ngx_dr_merge_loc_conf                  /* merge location configuration */
};


ngx_module_t  ngx_http_dr_module = {
    NGX_MODULE_V1,
    &ngx_dr_module_ctx,                    /* module context */
    ngx_dr_commands,                       /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_dr_init_process,                   /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_dr_exit_process,                   /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_dr_create_main_conf(ngx_conf_t *cf)
{
    ngx_dr_main_conf_t  *dmcf;

    dmcf = ngx_pcalloc(cf->pool, sizeof(ngx_dr_main_conf_t));
    if (dmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dmcf->pg.primary = NULL;
     *     dmcf->pg.replicas = NULL;
     */

    dmcf->pg.pool_size = NGX_CONF_UNSET_UINT;
    dmcf->pg.max_waiting = NGX_CONF_UNSET_UINT;
    dmcf->pg.connect_timeout = NGX_CONF_UNSET_MSEC;
    dmcf->pg.query_timeout = NGX_CONF_UNSET_MSEC;
    dmcf->cache.stale = NGX_CONF_UNSET;

    return dmcf;
}


static char *
ngx_dr_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_dr_main_conf_t  *dmcf = conf;

    return ngx_dr_pg_init_conf(cf, &dmcf->pg);
}


static void *
ngx_dr_create_loc_conf(ngx_conf_t *cf)
{
    ngx_dr_loc_conf_t  *dlcf;

    dlcf = ngx_pcalloc(cf->pool, sizeof(ngx_dr_loc_conf_t));
    if (dlcf == NULL) {
        return NULL;
    }

    dlcf->api = NGX_CONF_UNSET;
    dlcf->cors = NGX_CONF_UNSET_PTR;

    return dlcf;
}


static char *
ngx_dr_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_dr_loc_conf_t  *prev = parent;
    ngx_dr_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->api, prev->api, 0);
    ngx_conf_merge_ptr_value(conf->cors, prev->cors, NULL);

    return NGX_CONF_OK;
}


static char *
ngx_dr_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_loc_conf_t  *dlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (dlcf->api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    dlcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_dr_api_handler;

    return NGX_CONF_OK;
}


static char *
ngx_dr_conf_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    ngx_str_t  *value;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" must be between %i and %i, not %i",
                       &value[0], bounds->low, bounds->high, *np);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_dr_init_process(ngx_cycle_t *cycle)
{
    ngx_dr_main_conf_t  *dmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dr_module);
    if (dmcf == NULL) {
        /* no http block */
        return NGX_OK;
    }

    if (ngx_dr_pg_init_process(cycle, &dmcf->pg) != NGX_OK
        || ngx_dr_api_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_dr_pg_listen_start();
}


static void
ngx_dr_exit_process(ngx_cycle_t *cycle)
{
    ngx_dr_pg_exit_process(cycle);
}

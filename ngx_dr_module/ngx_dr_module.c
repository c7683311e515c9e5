
/*
 * Domain Runner: the module, its directives and the life of a worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_api.h"
#include "ngx_dr_admin.h"
#include "ngx_dr_auth.h"
#include "ngx_dr_keys.h"
#include "ngx_dr_health.h"
#include "ngx_dr_metrics.h"
#include "ngx_dr_queue.h"
#include "ngx_dr_usage.h"
#include "ngx_dr_report.h"
#include "ngx_dr_account.h"
#include "ngx_dr_llm.h"
#include "ngx_dr_budget.h"
#include "ngx_dr_runner.h"
#include "ngx_dr_schedule.h"
#include "ngx_dr_events.h"
#include "ngx_dr_rescore.h"


static ngx_int_t ngx_dr_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_dr_postconfiguration(ngx_conf_t *cf);
static void *ngx_dr_create_main_conf(ngx_conf_t *cf);
static char *ngx_dr_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_dr_schedule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_dr_create_loc_conf(ngx_conf_t *cf);
static char *ngx_dr_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_dr_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_dr_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
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

static ngx_conf_num_bounds_t  ngx_dr_runner_jobs_bounds = {
    ngx_dr_conf_bounds, 1, 65536
};

/* an access token lives from a minute to a day (in seconds) */
static ngx_conf_num_bounds_t  ngx_dr_jwt_ttl_bounds = {
    ngx_dr_conf_bounds, 60, 86400
};

static ngx_conf_num_bounds_t  ngx_dr_status_bounds = {
    ngx_dr_conf_bounds, 400, 599
};


static ngx_conf_enum_t  ngx_dr_auth_modes[] = {
    { ngx_string("off"), NGX_DR_AUTH_OFF },
    { ngx_string("optional"), NGX_DR_AUTH_OPTIONAL },
    { ngx_string("required"), NGX_DR_AUTH_REQUIRED },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_dr_auth_fail_modes[] = {
    { ngx_string("closed"), NGX_DR_AUTH_FAIL_CLOSED },
    { ngx_string("open"), NGX_DR_AUTH_FAIL_OPEN },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_dr_severities[] = {
    { ngx_string("low"), NGX_DR_SEVERITY_LOW },
    { ngx_string("medium"), NGX_DR_SEVERITY_MEDIUM },
    { ngx_string("high"), NGX_DR_SEVERITY_HIGH },
    { ngx_string("critical"), NGX_DR_SEVERITY_CRITICAL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_dr_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
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

    { ngx_string("dr_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_dr_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dr_provider"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_dr_llm_provider,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, providers),
      NULL },

    { ngx_string("dr_budget"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE3,
      ngx_dr_budget,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, budgets),
      NULL },

    { ngx_string("dr_runner"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, runner),
      NULL },

    { ngx_string("dr_runner_lease"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, runner_lease),
      NULL },

    { ngx_string("dr_runner_jobs"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, runner_jobs),
      &ngx_dr_runner_jobs_bounds },

    { ngx_string("dr_schedule"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_dr_schedule,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dr_jolt_severity"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, jolt_severity),
      &ngx_dr_severities },

    { ngx_string("dr_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_dr_metrics_handler_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dr_key_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_dr_auth_secret_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dr_jwt_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_dr_auth_jwt_secret_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dr_jwt_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, jwt_ttl),
      &ngx_dr_jwt_ttl_bounds },

    { ngx_string("dr_auth_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_dr_keys_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dr_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_dr_loc_conf_t, auth),
      &ngx_dr_auth_modes },

    { ngx_string("dr_auth_hide_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_dr_loc_conf_t, hide_credentials),
      NULL },

    { ngx_string("dr_auth_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_dr_loc_conf_t, auth_fail),
      &ngx_dr_auth_fail_modes },

    { ngx_string("dr_limit_policy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_dr_limit_policy,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, limit),
      NULL },

    { ngx_string("dr_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_dr_limit_ref,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_dr_loc_conf_t, limits),
      NULL },

    { ngx_string("dr_tier"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_dr_limit_tier,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, limit),
      NULL },

    { ngx_string("dr_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_dr_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, limit),
      NULL },

    { ngx_string("dr_limit_sync"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_dr_limit_sync,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, limit),
      NULL },

    { ngx_string("dr_limit_anonymous_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_dr_limit_anonymous_prefix,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, limit),
      NULL },

    { ngx_string("dr_usage_flush"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_dr_main_conf_t, limit.flush_interval),
      NULL },

    { ngx_string("dr_limit_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_dr_loc_conf_t, limit_dry_run),
      NULL },

    { ngx_string("dr_limit_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_dr_loc_conf_t, limit_status),
      &ngx_dr_status_bounds },

    { ngx_string("dr_limit_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_dr_loc_conf_t, limit_log_level),
      &ngx_dr_log_levels },

      ngx_null_command
};


static ngx_http_module_t  ngx_dr_module_ctx = {
    ngx_dr_preconfiguration,               /* preconfiguration */
    ngx_dr_postconfiguration,              /* postconfiguration */

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


static ngx_int_t
ngx_dr_preconfiguration(ngx_conf_t *cf)
{
    return ngx_dr_auth_add_variables(cf);
}


static ngx_int_t
ngx_dr_postconfiguration(ngx_conf_t *cf)
{
    ngx_dr_main_conf_t  *dmcf;

    ngx_str_t  request_id = ngx_string("request_id");

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dr_module);

    dmcf->request_id = ngx_http_get_variable_index(cf, &request_id);
    if (dmcf->request_id == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ngx_dr_counters_zone(cf, &ngx_http_dr_module) != NGX_OK
        || ngx_dr_api_init(cf) != NGX_OK
        || ngx_dr_report_init(cf) != NGX_OK
        || ngx_dr_account_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_dr_auth_init(cf);
}


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
    dmcf->limit.sync_interval = NGX_CONF_UNSET_MSEC;
    dmcf->limit.flush_interval = NGX_CONF_UNSET_MSEC;
    dmcf->limit.anonymous_v4 = NGX_CONF_UNSET_UINT;
    dmcf->limit.anonymous_v6 = NGX_CONF_UNSET_UINT;
    dmcf->runner = NGX_CONF_UNSET;
    dmcf->runner_lease = NGX_CONF_UNSET_MSEC;
    dmcf->runner_jobs = NGX_CONF_UNSET_UINT;
    dmcf->schedule = NGX_CONF_UNSET;
    dmcf->jolt_severity = NGX_CONF_UNSET_UINT;
    dmcf->key_ttl = NGX_CONF_UNSET;
    dmcf->key_negative_ttl = NGX_CONF_UNSET;
    dmcf->key_unknown_max = NGX_CONF_UNSET_UINT;
    dmcf->jwt_ttl = NGX_CONF_UNSET;

    return dmcf;
}


static char *
ngx_dr_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_dr_main_conf_t  *dmcf = conf;

    ngx_conf_init_value(dmcf->runner, 0);
    ngx_conf_init_msec_value(dmcf->runner_lease, 120000);
    ngx_conf_init_uint_value(dmcf->runner_jobs, 256);
    ngx_conf_init_uint_value(dmcf->jolt_severity, NGX_DR_SEVERITY_HIGH);

    /* a node that crawls schedules a run of everything weekly */
    if (dmcf->schedule == NGX_CONF_UNSET) {
        dmcf->schedule = dmcf->runner ? 7 * 86400 : 0;
    }

    if (dmcf->schedule && dmcf->pg.primary == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_schedule\" needs \"dr_pg\"");
        return NGX_CONF_ERROR;
    }

    if (dmcf->budgets && dmcf->pg.primary == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_budget\" needs \"dr_pg\": the spend "
                           "lives in the database");
        return NGX_CONF_ERROR;
    }

    if (dmcf->runner_lease < 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_runner_lease\" must be at least 1s");
        return NGX_CONF_ERROR;
    }

    if (dmcf->runner && (dmcf->providers == NULL || dmcf->pg.primary == NULL))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_runner on\" needs \"dr_pg\" and at least "
                           "one \"dr_provider\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(dmcf->key_ttl, 30);
    ngx_conf_init_value(dmcf->key_negative_ttl, 5);
    ngx_conf_init_value(dmcf->jwt_ttl, 3600);

    if (ngx_dr_limit_init_conf(cf, &dmcf->limit) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_dr_pg_init_conf(cf, &dmcf->pg);
}


static char *
ngx_dr_schedule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_main_conf_t  *dmcf = conf;

    time_t      t;
    ngx_str_t  *value;

    if (dmcf->schedule != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        dmcf->schedule = 0;
        return NGX_CONF_OK;
    }

    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_schedule\" takes \"off\" or a time of at "
                           "least 1s, not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    dmcf->schedule = t;

    return NGX_CONF_OK;
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
    dlcf->admin = NGX_CONF_UNSET;
    dlcf->cors = NGX_CONF_UNSET_PTR;
    dlcf->auth = NGX_CONF_UNSET_UINT;
    dlcf->auth_fail = NGX_CONF_UNSET_UINT;
    dlcf->hide_credentials = NGX_CONF_UNSET;
    dlcf->limits = NGX_CONF_UNSET_PTR;
    dlcf->limit_dry_run = NGX_CONF_UNSET;
    dlcf->limit_status = NGX_CONF_UNSET_UINT;
    dlcf->limit_log_level = NGX_CONF_UNSET_UINT;

    return dlcf;
}


static char *
ngx_dr_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_dr_loc_conf_t  *prev = parent;
    ngx_dr_loc_conf_t  *conf = child;

    ngx_dr_main_conf_t  *dmcf;

    ngx_conf_merge_value(conf->api, prev->api, 0);
    ngx_conf_merge_value(conf->admin, prev->admin, 0);
    ngx_conf_merge_ptr_value(conf->cors, prev->cors, NULL);
    ngx_conf_merge_uint_value(conf->auth, prev->auth, NGX_DR_AUTH_OFF);
    ngx_conf_merge_uint_value(conf->auth_fail, prev->auth_fail,
                              NGX_DR_AUTH_FAIL_CLOSED);
    ngx_conf_merge_value(conf->hide_credentials, prev->hide_credentials, 0);
    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);
    ngx_conf_merge_value(conf->limit_dry_run, prev->limit_dry_run, 0);
    ngx_conf_merge_uint_value(conf->limit_status, prev->limit_status,
                              NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_uint_value(conf->limit_log_level, prev->limit_log_level,
                              NGX_LOG_INFO);

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dr_module);

    if (conf->limits) {
        if (conf->auth == NGX_DR_AUTH_OFF) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"dr_limit\" needs \"dr_auth optional\" or "
                               "\"dr_auth required\" in its location");
            return NGX_CONF_ERROR;
        }

        if (ngx_dr_limit_refs_resolve(cf, &dmcf->limit, conf->limits)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->auth != NGX_DR_AUTH_OFF) {

        if (dmcf->key_secret.value.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"dr_auth\" needs \"dr_key_secret_file\"");
            return NGX_CONF_ERROR;
        }

        if (dmcf->limit.shm_zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"dr_auth\" needs \"dr_limit_zone\": "
                               "every key is limited");
            return NGX_CONF_ERROR;
        }
    }

    if (conf->admin == 1 && conf->auth != NGX_DR_AUTH_REQUIRED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_admin\" needs \"dr_auth required\" in its "
                           "location");
        return NGX_CONF_ERROR;
    }

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


static char *
ngx_dr_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_loc_conf_t  *dlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (dlcf->admin != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    dlcf->admin = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_dr_admin_handler;

    return NGX_CONF_OK;
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
        || ngx_dr_api_init_process(cycle) != NGX_OK
        || ngx_dr_keys_init_process(cycle) != NGX_OK
        || ngx_dr_usage_init_process(cycle, &dmcf->limit) != NGX_OK
        || ngx_dr_report_init_process(cycle) != NGX_OK
        || ngx_dr_queue_init_process(cycle) != NGX_OK
        || ngx_dr_budget_init_process(cycle) != NGX_OK
        || (dmcf->providers && ngx_dr_llm_init_process(cycle) != NGX_OK)
        || ngx_dr_runner_init_process(cycle) != NGX_OK
        || ngx_dr_scores_init_process(cycle) != NGX_OK
        || ngx_dr_schedule_init_process(cycle) != NGX_OK
        || ngx_dr_events_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_dr_pg_listen_start();
}


static void
ngx_dr_exit_process(ngx_cycle_t *cycle)
{
    ngx_dr_llm_exit_process(cycle);
    ngx_dr_auth_exit_process(cycle);
    ngx_dr_pg_exit_process(cycle);
}

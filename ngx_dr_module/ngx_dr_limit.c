
/*
 * Domain Runner: token buckets and daily quotas in shared memory.
 *
 * One bucket per API key (per client address for the anonymous tier) in a
 * zone shared by every worker, checked and taken under one lock, so the
 * limit is exact across workers.  The arithmetic is in integers: a token
 * is worth "period" units (the period of the rate in milliseconds) and
 * every millisecond adds "rate" units, so 1 request a day and 100,000 a
 * second are both exact, with no rounding drift.
 *
 * Worker 0 of each node flushes the daily counts to usage_daily in
 * batches, and in cluster mode exchanges with the other nodes, through
 * PostgreSQL, the tokens each has taken: a node subtracts what the others
 * took from its own buckets.  Each node pushes and pulls every half
 * interval, so what one node takes reaches the others within one
 * interval, and N nodes admit at most rate x interval x (N - 1) more than
 * one node would, plus the burst each node's new bucket starts with.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_counters.h"
#include "ngx_dr_shm.h"
#include "ngx_dr_bucket.h"


#define NGX_DR_LIMIT_VERSION   4
#define NGX_DR_LIMIT_EVICT     16      /* freed at most for one bucket */
#define NGX_DR_LIMIT_LOOK      64      /* looked at for them, at most */
#define NGX_DR_LIMIT_NODE_SIZE 256     /* a bucket in the zone, about */


typedef struct {
    ngx_dr_shm_node_t    sh;
    ngx_dr_bucket_t      bucket;
    int64_t              key_id;       /* 0: anonymous */
    uint32_t             day;          /* UTC day of the daily counts */
    uint32_t             pending_day;
    uint64_t             daily;        /* admitted here on "day" */
    uint64_t             daily_seed;   /* used on "day" as the database
                                          knew when the bucket was made */
    uint64_t             daily_remote; /* admitted by the other nodes */
    uint64_t             daily_pushed; /* "daily" the cluster knows */
    uint64_t             pending;      /* admitted, not yet flushed */
    uint64_t             pending_rejected;
    uint64_t             consumed;     /* tokens ever taken here */
    uint64_t             pushed;       /* "consumed" the cluster knows */
    uint64_t             remote;       /* tokens the others took */
    ngx_queue_t          dirty;        /* in sh->dirty, while it has news */
    unsigned             synced:1;
    unsigned             anonymous:1;  /* in the anonymous reserve */
    unsigned             in_dirty:1;
    u_char               data[1];
} ngx_dr_limit_node_t;


/*
 * The zone: buckets of keys and providers in the head's LRU, anonymous
 * clients' in a reserve of their own, so that no churn of addresses can
 * push a key's bucket out.
 */
typedef struct {
    ngx_dr_shm_head_t    head;
    ngx_queue_t          anonymous;    /* LRU of the anonymous reserve */
    ngx_uint_t           nanonymous;

    /*
     * the buckets with counts the flush or the cluster has not had yet:
     * what they walk under the lock, instead of every bucket
     */
    ngx_queue_t          dirty;
    ngx_uint_t           nbuckets;

    /* read by the metrics */
    ngx_atomic_t         evictions;    /* buckets freed to make room */
    ngx_atomic_t         refused;      /* new clients with no room */
} ngx_dr_limit_sh_t;

#define ngx_dr_limit_sh(ctx)  ((ngx_dr_limit_sh_t *) (ctx)->sh)


/* does a bucket belong in a batch; with a row, fills it */
typedef ngx_uint_t (*ngx_dr_limit_pick_pt)(ngx_dr_limit_node_t *ln,
    ngx_dr_limit_row_t *row);


static ngx_dr_limit_node_t *ngx_dr_limit_node_locked(
    ngx_dr_limit_conf_t *lcf, ngx_dr_shm_ctx_t *ctx, ngx_str_t *key,
    ngx_dr_tier_t *tier);
static ngx_uint_t ngx_dr_limit_evict_locked(ngx_dr_limit_conf_t *lcf,
    ngx_dr_shm_ctx_t *ctx, ngx_queue_t *lru);
static ngx_uint_t ngx_dr_limit_is_anonymous(ngx_str_t *key);
static ngx_int_t ngx_dr_limit_rate_arg(ngx_str_t *v, ngx_dr_tier_t *t);
static char *ngx_dr_limit_policy_by(ngx_conf_t *cf, ngx_dr_policy_t *policy,
    ngx_str_t *by);
static void ngx_dr_limit_init_sh(ngx_dr_shm_head_t *head);
static ngx_int_t ngx_dr_limit_nodes_locked(ngx_dr_limit_conf_t *lcf,
    ngx_dr_shm_ctx_t *ctx, ngx_dr_limit_want_t *wants, ngx_uint_t n,
    ngx_dr_limit_node_t **ln);
static void ngx_dr_limit_day_locked(ngx_dr_limit_node_t *ln,
    ngx_dr_limit_want_t *w, uint32_t today);
static ngx_uint_t ngx_dr_limit_check_locked(ngx_dr_limit_node_t *ln,
    ngx_dr_limit_want_t *w, ngx_dr_limit_result_t *res);
static void ngx_dr_limit_count_locked(ngx_dr_limit_node_t *ln,
    ngx_dr_limit_want_t *w, ngx_dr_limit_result_t *res, uint32_t today);
static void ngx_dr_limit_most(ngx_dr_limit_want_t *wants, ngx_uint_t n,
    ngx_dr_limit_result_t *res);
static uint64_t ngx_dr_limit_daily_locked(ngx_dr_limit_node_t *ln);
static void ngx_dr_limit_refill_locked(ngx_dr_limit_node_t *ln,
    ngx_dr_tier_t *tier);
static ngx_dr_limit_node_t *ngx_dr_limit_lookup_locked(
    ngx_dr_shm_ctx_t *ctx, ngx_str_t *key);
static void ngx_dr_limit_remote_locked(ngx_dr_limit_node_t *ln,
    uint64_t others);
static void ngx_dr_limit_dirty_locked(ngx_dr_shm_ctx_t *ctx,
    ngx_dr_limit_node_t *ln);
static void ngx_dr_limit_clean_locked(ngx_dr_limit_conf_t *lcf,
    ngx_dr_limit_node_t *ln);
static ngx_uint_t ngx_dr_limit_pending(ngx_dr_limit_node_t *ln,
    ngx_dr_limit_row_t *row);
static ngx_uint_t ngx_dr_limit_consumed(ngx_dr_limit_node_t *ln,
    ngx_dr_limit_row_t *row);


static ngx_dr_tier_t  ngx_dr_limit_default_tiers[] = {
    { ngx_string("free"), 10, 60000, 5, 1000 },
    { ngx_string("pro"), 100, 60000, 20, 50000 },
    { ngx_string("enterprise"), 1000, 60000, 100, 500000 },
    { ngx_string("anonymous"), 10, 60000, 5, 1000 },
    { ngx_string("admin"), 1000, 60000, 100, 0 },
    /* look-ups of keys not in the cache, per client: a flood of made-up
     * keys is refused before it becomes queries */
    { ngx_string("key_lookup"), 100, 1000, 200, 0 },
    /* sign-ins and registrations of the accounts, per client: a
     * password guesser meets a 429 at the eleventh try of a minute */
    { ngx_string("login"), 10, 60000, 10, 0 },
    /* GET /api/usage, per key: reading one's usage is not charged to the
     * key's limits (a drained key can see why), but is limited apart */
    { ngx_string("usage_report"), 60, 60000, 10, 0 },
    { ngx_null_string, 0, 0, 0, 0 }
};




/* configuration */


/* dr_tier name rate=N/s|m|h|d [burst=N] [daily=N] */

char *
ngx_dr_limit_tier(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_limit_conf_t  *lcf;

    ngx_int_t       n, rc;
    ngx_str_t      *value;
    ngx_uint_t      i;
    ngx_dr_tier_t  *tier;

    lcf = (ngx_dr_limit_conf_t *) ((char *) conf + cmd->offset);
    value = cf->args->elts;

    for (i = 0; value[1].data[i]; i++) {
        if (!(value[1].data[i] >= 'a' && value[1].data[i] <= 'z')
            && !(value[1].data[i] >= '0' && value[1].data[i] <= '9')
            && value[1].data[i] != '_')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" needs a tier name of [a-z0-9_], "
                               "not \"%V\"", &cmd->name, &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (lcf->tiers == NULL) {
        lcf->tiers = ngx_array_create(cf->pool, 8, sizeof(ngx_dr_tier_t));
        if (lcf->tiers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_dr_limit_find_tier(lcf, value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": tier \"%V\" is declared twice",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    tier = ngx_array_push(lcf->tiers);
    if (tier == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(tier, sizeof(ngx_dr_tier_t));
    tier->name = value[1];
    tier->burst = 1;

    for (i = 2; i < cf->args->nelts; i++) {

        rc = ngx_dr_limit_rate_arg(&value[i], tier);

        if (rc == NGX_OK) {
            continue;
        }

        if (rc == NGX_ERROR) {
            goto invalid;
        }

        if (ngx_strncmp(value[i].data, "daily=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 0) {
                goto invalid;
            }

            tier->daily = n;
            continue;
        }

        goto invalid;
    }

    if (tier->rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs rate=N/s, N/m, N/h or N/d for "
                           "tier \"%V\"", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" has an invalid \"%V\": it takes rate=N/s "
                       "(or /m, /h, /d), burst=N (at least 1) and daily=N "
                       "(0 for none)", &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * "rate=N/s|m|h|d" or "burst=N" into t: NGX_OK, NGX_DECLINED for another
 * argument, NGX_ERROR for a bad value
 */

static ngx_int_t
ngx_dr_limit_rate_arg(ngx_str_t *v, ngx_dr_tier_t *t)
{
    u_char     *p, *last;
    ngx_int_t   n;

    if (ngx_strncmp(v->data, "burst=", 6) == 0) {
        n = ngx_atoi(v->data + 6, v->len - 6);
        if (n <= 0 || n > 10000000) {
            return NGX_ERROR;
        }

        t->burst = n;
        return NGX_OK;
    }

    if (ngx_strncmp(v->data, "rate=", 5) != 0) {
        return NGX_DECLINED;
    }

    p = v->data + 5;
    last = v->data + v->len;

    while (p < last && *p != '/') {
        p++;
    }

    n = ngx_atoi(v->data + 5, p - (v->data + 5));

    if (n <= 0 || n > 10000000 || last - p != 2) {
        return NGX_ERROR;
    }

    switch (p[1]) {
    case 's':
        t->period = 1000;
        break;
    case 'm':
        t->period = 60000;
        break;
    case 'h':
        t->period = 3600000;
        break;
    case 'd':
        t->period = 86400000;
        break;
    default:
        return NGX_ERROR;
    }

    t->rate = n;

    return NGX_OK;
}


/*
 * dr_limit_policy name rate=N/s|m|h|d [burst=N] [tier=T] [by=key|address|
 * $variable]: a named bucket for locations' dr_limit; a line with tier=
 * sets the rate of keys of that tier
 */

char *
ngx_dr_limit_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_limit_conf_t  *lcf;

    ngx_int_t         rc;
    ngx_str_t        *value, tier_name, by;
    ngx_uint_t        i;
    ngx_dr_tier_t     rate, *t;
    ngx_dr_policy_t  *policy;

    lcf = (ngx_dr_limit_conf_t *) ((char *) conf + cmd->offset);
    value = cf->args->elts;

    ngx_memzero(&rate, sizeof(ngx_dr_tier_t));
    rate.burst = 1;
    ngx_str_null(&tier_name);
    ngx_str_null(&by);

    for (i = 2; i < cf->args->nelts; i++) {

        rc = ngx_dr_limit_rate_arg(&value[i], &rate);

        if (rc == NGX_OK) {
            continue;
        }

        if (rc == NGX_DECLINED && ngx_strncmp(value[i].data, "tier=", 5) == 0
            && value[i].len > 5)
        {
            tier_name.data = value[i].data + 5;
            tier_name.len = value[i].len - 5;
            continue;
        }

        if (rc == NGX_DECLINED && ngx_strncmp(value[i].data, "by=", 3) == 0
            && value[i].len > 3)
        {
            by.data = value[i].data + 3;
            by.len = value[i].len - 3;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" has an invalid \"%V\": it takes "
                           "rate=N/s (or /m, /h, /d), burst=N, tier=name "
                           "and by=key|address|$variable",
                           &cmd->name, &value[i]);
        return NGX_CONF_ERROR;
    }

    if (rate.rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" %V needs rate=N/s, N/m, N/h or N/d",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    policy = ngx_dr_limit_find_policy(lcf, &value[1]);

    if (policy == NULL) {
        if (tier_name.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" %V: the line without tier= comes "
                               "first", &cmd->name, &value[1]);
            return NGX_CONF_ERROR;
        }

        if (lcf->policies == NULL) {
            lcf->policies = ngx_array_create(cf->pool, 4,
                                             sizeof(ngx_dr_policy_t));
            if (lcf->policies == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        policy = ngx_array_push(lcf->policies);
        if (policy == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(policy, sizeof(ngx_dr_policy_t));
        policy->rate = rate;
        policy->rate.name = value[1];
        policy->by = NGX_DR_POLICY_BY_KEY;

        return ngx_dr_limit_policy_by(cf, policy, &by);
    }

    if (tier_name.len == 0 || by.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" %V is declared twice: a further line "
                           "takes tier= and no by=", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    if (policy->tiers == NULL) {
        policy->tiers = ngx_array_create(cf->pool, 4, sizeof(ngx_dr_tier_t));
        if (policy->tiers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    t = ngx_array_push(policy->tiers);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    *t = rate;
    t->name = tier_name;

    return NGX_CONF_OK;
}


static char *
ngx_dr_limit_policy_by(ngx_conf_t *cf, ngx_dr_policy_t *policy,
    ngx_str_t *by)
{
    ngx_str_t  name;

    if (by->len == 0 || (by->len == 3 && ngx_strncmp(by->data, "key", 3) == 0))
    {
        return NGX_CONF_OK;
    }

    if (by->len == 7 && ngx_strncmp(by->data, "address", 7) == 0) {
        policy->by = NGX_DR_POLICY_BY_ADDRESS;
        return NGX_CONF_OK;
    }

    if (by->data[0] != '$' || by->len < 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dr_limit_policy\" %V: by= takes key, address "
                           "or a $variable, not \"%V\"",
                           &policy->rate.name, by);
        return NGX_CONF_ERROR;
    }

    name.data = by->data + 1;
    name.len = by->len - 1;

    policy->index = ngx_http_get_variable_index(cf, &name);
    if (policy->index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    policy->by = NGX_DR_POLICY_BY_VARIABLE;

    return NGX_CONF_OK;
}


ngx_dr_policy_t *
ngx_dr_limit_find_policy(ngx_dr_limit_conf_t *lcf, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_dr_policy_t  *policy;

    if (lcf->policies == NULL) {
        return NULL;
    }

    policy = lcf->policies->elts;

    for (i = 0; i < lcf->policies->nelts; i++) {
        if (policy[i].rate.name.len == name->len
            && ngx_strncmp(policy[i].rate.name.data, name->data, name->len)
               == 0)
        {
            return &policy[i];
        }
    }

    return NULL;
}


/* the rate of a policy for a tier: its own, or the policy's */

ngx_dr_tier_t *
ngx_dr_limit_policy_rate(ngx_dr_policy_t *policy, ngx_dr_tier_t *tier)
{
    ngx_uint_t      i;
    ngx_dr_tier_t  *t;

    if (policy->tiers && tier) {
        t = policy->tiers->elts;

        for (i = 0; i < policy->tiers->nelts; i++) {
            if (t[i].name.len == tier->name.len
                && ngx_strncmp(t[i].name.data, tier->name.data,
                               tier->name.len)
                   == 0)
            {
                return &t[i];
            }
        }
    }

    return &policy->rate;
}


/* dr_limit name [cost=N|$variable], in a location: several may apply */

char *
ngx_dr_limit_ref(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_int_t                          n;
    ngx_str_t                         *value, v;
    ngx_array_t                      **limits;
    ngx_dr_limit_ref_t                *ref;
    ngx_http_compile_complex_value_t   ccv;

    limits = (ngx_array_t **) (p + cmd->offset);
    value = cf->args->elts;

    if (*limits == NGX_CONF_UNSET_PTR || *limits == NULL) {
        *limits = ngx_array_create(cf->pool, 2, sizeof(ngx_dr_limit_ref_t));
        if (*limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if ((*limits)->nelts == NGX_DR_LIMIT_WANTS - 1) {
        return "is given too many times: 7 policies at most a location";
    }

    ref = ngx_array_push(*limits);
    if (ref == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(ref, sizeof(ngx_dr_limit_ref_t));
    ref->name = value[1];
    ref->cost = 1;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "cost=", 5) != 0 || value[2].len == 5) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes a policy and cost=N or "
                           "cost=$variable, not \"%V\"", &cmd->name,
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    v.data = value[2].data + 5;
    v.len = value[2].len - 5;

    if (v.data[0] != '$') {
        n = ngx_atoi(v.data, v.len);
        if (n < 0 || n > 1000000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" needs a cost from 0 to 1000000, not "
                               "\"%V\"", &cmd->name, &v);
            return NGX_CONF_ERROR;
        }

        ref->cost = n;
        return NGX_CONF_OK;
    }

    ref->cost_cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (ref->cost_cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &v;
    ccv.complex_value = ref->cost_cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the policies of a location's dr_limit, found once the http block is read */

char *
ngx_dr_limit_refs_resolve(ngx_conf_t *cf, ngx_dr_limit_conf_t *lcf,
    ngx_array_t *limits)
{
    ngx_uint_t           i;
    ngx_dr_limit_ref_t  *ref;

    if (limits == NULL) {
        return NGX_CONF_OK;
    }

    ref = limits->elts;

    for (i = 0; i < limits->nelts; i++) {
        if (ref[i].policy) {
            continue;
        }

        ref[i].policy = ngx_dr_limit_find_policy(lcf, &ref[i].name);

        if (ref[i].policy == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"dr_limit\": no \"dr_limit_policy\" %V",
                               &ref[i].name);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* dr_limit_zone zone=name:size */

char *
ngx_dr_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_limit_conf_t  *lcf;

    ssize_t              size;
    ngx_str_t           *value, name;

    lcf = (ngx_dr_limit_conf_t *) ((char *) conf + cmd->offset);
    value = cf->args->elts;

    if (lcf->shm_zone) {
        return "is duplicate";
    }

    if (ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes zone=name:size, not \"%V\"",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_dr_shm_zone_size(cf, cmd, &value[1], &name, &size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    lcf->shm_zone = ngx_dr_shm_add(cf, &name, size,
                                   sizeof(ngx_dr_limit_sh_t),
                                   NGX_DR_LIMIT_VERSION, "dr_limit_zone",
                                   ngx_dr_limit_init_sh);
    if (lcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    /* anonymous clients may hold about half of the buckets that fit */
    lcf->anonymous_max = ngx_max((size_t) size / (2 * NGX_DR_LIMIT_NODE_SIZE),
                                 8);

    return NGX_CONF_OK;
}


/* dr_limit_anonymous_prefix [ipv4=N] [ipv6=N] */

char *
ngx_dr_limit_anonymous_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_dr_limit_conf_t  *lcf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i, v6;

    lcf = (ngx_dr_limit_conf_t *) ((char *) conf + cmd->offset);
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        v6 = (ngx_strncmp(value[i].data, "ipv6=", 5) == 0);

        if (!v6 && ngx_strncmp(value[i].data, "ipv4=", 5) != 0) {
            goto invalid;
        }

        n = ngx_atoi(value[i].data + 5, value[i].len - 5);

        if (n < 1 || n > (v6 ? 128 : 32)) {
            goto invalid;
        }

        if (v6) {
            lcf->anonymous_v6 = n;

        } else {
            lcf->anonymous_v4 = n;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" takes ipv4=1..32 and ipv6=1..128, not "
                       "\"%V\"", &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
}


/* dr_limit_sync interval=time [node=name] */

char *
ngx_dr_limit_sync(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_dr_limit_conf_t  *lcf;

    ngx_str_t   *value, s;
    ngx_uint_t   i;

    lcf = (ngx_dr_limit_conf_t *) ((char *) conf + cmd->offset);
    value = cf->args->elts;

    if (lcf->sync_interval != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            lcf->sync_interval = ngx_parse_time(&s, 0);
            if (lcf->sync_interval == (ngx_msec_t) NGX_ERROR
                || lcf->sync_interval < 100)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" needs an interval of at least "
                                   "100ms, not \"%V\"", &cmd->name,
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "node=", 5) == 0
            && value[i].len > 5 && value[i].len <= 5 + 63)
        {
            lcf->node.data = value[i].data + 5;
            lcf->node.len = value[i].len - 5;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes interval=time and node=name "
                           "(1 to 63 characters), not \"%V\"",
                           &cmd->name, &value[i]);
        return NGX_CONF_ERROR;
    }

    if (lcf->sync_interval == NGX_CONF_UNSET_MSEC) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs interval=time", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_dr_limit_init_conf(ngx_conf_t *cf, ngx_dr_limit_conf_t *lcf)
{
    ngx_dr_tier_t  *tier, *t;

    if (lcf->tiers == NULL) {
        lcf->tiers = ngx_array_create(cf->pool, 8, sizeof(ngx_dr_tier_t));
        if (lcf->tiers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* the tiers of the original API, unless declared otherwise */

    for (t = ngx_dr_limit_default_tiers; t->name.len; t++) {
        if (ngx_dr_limit_find_tier(lcf, t->name.data, t->name.len)) {
            continue;
        }

        tier = ngx_array_push(lcf->tiers);
        if (tier == NULL) {
            return NGX_CONF_ERROR;
        }

        *tier = *t;
    }

    ngx_conf_init_msec_value(lcf->flush_interval, 10000);
    ngx_conf_init_uint_value(lcf->anonymous_v4, 32);
    ngx_conf_init_uint_value(lcf->anonymous_v6, 64);

    if (lcf->sync_interval != NGX_CONF_UNSET_MSEC && lcf->node.len == 0) {
        lcf->node = cf->cycle->hostname;
    }

    return NGX_CONF_OK;
}


ngx_dr_tier_t *
ngx_dr_limit_find_tier(ngx_dr_limit_conf_t *lcf, u_char *name, size_t len)
{
    ngx_uint_t      i;
    ngx_dr_tier_t  *tier;

    if (lcf->tiers == NULL) {
        return NULL;
    }

    tier = lcf->tiers->elts;

    for (i = 0; i < lcf->tiers->nelts; i++) {
        if (tier[i].name.len == len
            && ngx_strncmp(tier[i].name.data, name, len) == 0)
        {
            return &tier[i];
        }
    }

    return NULL;
}


static void
ngx_dr_limit_init_sh(ngx_dr_shm_head_t *head)
{
    ngx_queue_init(&((ngx_dr_limit_sh_t *) head)->anonymous);
    ngx_queue_init(&((ngx_dr_limit_sh_t *) head)->dirty);
}


/*
 * An anonymous client: its address's network of the configured prefix
 * ("2001:db8:1:2::/64", "192.0.2.7/32"), so that one /64 of IPv6, whose
 * owner has all of its addresses, is one client.
 */

ngx_int_t
ngx_dr_limit_client(ngx_dr_limit_conf_t *lcf, ngx_connection_t *c,
    ngx_pool_t *pool, ngx_str_t *label)
{
    u_char               *p, *bytes;
    size_t                len;
    ngx_uint_t            i, bits, nbytes;
    struct sockaddr_in    sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6   sin6;
#endif

    switch (c->sockaddr->sa_family) {

    case AF_INET:
        ngx_memcpy(&sin, c->sockaddr, sizeof(struct sockaddr_in));
        bytes = (u_char *) &sin.sin_addr;
        nbytes = 4;
        bits = lcf->anonymous_v4;
        sin.sin_port = 0;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        ngx_memcpy(&sin6, c->sockaddr, sizeof(struct sockaddr_in6));
        bytes = sin6.sin6_addr.s6_addr;
        nbytes = 16;
        bits = lcf->anonymous_v6;
        sin6.sin6_port = 0;
        break;
#endif

    default:
        /* a unix socket: one client */
        *label = c->addr_text;
        return NGX_OK;
    }

    for (i = 0; i < nbytes; i++) {
        if (bits >= 8) {
            bits -= 8;
            continue;
        }

        bytes[i] &= (u_char) (0xff << (8 - bits));
        bits = 0;
    }

    p = ngx_pnalloc(pool, NGX_SOCKADDR_STRLEN + 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

#if (NGX_HAVE_INET6)
    if (nbytes == 16) {
        len = ngx_sock_ntop((struct sockaddr *) &sin6,
                            sizeof(struct sockaddr_in6), p,
                            NGX_SOCKADDR_STRLEN, 0);
    } else
#endif
    {
        len = ngx_sock_ntop((struct sockaddr *) &sin,
                            sizeof(struct sockaddr_in), p,
                            NGX_SOCKADDR_STRLEN, 0);
    }

    label->data = p;
    label->len = ngx_sprintf(p + len, "/%ui",
                             nbytes == 16 ? lcf->anonymous_v6
                                          : lcf->anonymous_v4)
                 - p;

    return NGX_OK;
}


/* the tier's place in the counters; NGX_DR_M_TIERS for none */

ngx_uint_t
ngx_dr_limit_tier_index(ngx_dr_limit_conf_t *lcf, ngx_dr_tier_t *tier)
{
    ngx_dr_tier_t  *first;

    if (tier == NULL || lcf->tiers == NULL) {
        return NGX_DR_M_TIERS;
    }

    first = lcf->tiers->elts;

    if (tier < first || tier >= first + lcf->tiers->nelts) {
        return NGX_DR_M_TIERS;
    }

    return ngx_min((ngx_uint_t) (tier - first), NGX_DR_M_TIERS);
}


/* the bucket */


/*
 * Takes cost tokens from every bucket a request wants (the key's tier
 * bucket, with one request of its daily quota, and the buckets of the
 * location's policies), or from none of them: one is enough to refuse.
 * The most constraining bucket (the refusing one that frees last, or the
 * one with the fewest tokens left) is reported in res and res->most.
 */

ngx_int_t
ngx_dr_limit_take(ngx_dr_limit_conf_t *lcf, ngx_dr_limit_want_t *wants,
    ngx_uint_t n, ngx_dr_limit_result_t *res)
{
    uint32_t              today;
    ngx_uint_t            i;
    ngx_dr_shm_ctx_t     *ctx;
    ngx_dr_limit_node_t  *ln[NGX_DR_LIMIT_WANTS];

    ctx = lcf->shm_zone->data;
    today = (uint32_t) (ngx_time() / NGX_DR_LIMIT_DAY);
    n = ngx_min(n, NGX_DR_LIMIT_WANTS);

    ngx_memzero(res, sizeof(ngx_dr_limit_result_t));
    res->daily_reset = (time_t) (today + 1) * NGX_DR_LIMIT_DAY - ngx_time();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ngx_dr_limit_nodes_locked(lcf, ctx, wants, n, ln) != NGX_OK) {
        /* no room without forgiving another client: this one waits */
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        res->zone_full = 1;
        res->retry_after = 1;
        res->retry_ms = 1000;
        return NGX_OK;
    }

    res->passed = 1;

    for (i = 0; i < n; i++) {
        ngx_dr_limit_day_locked(ln[i], &wants[i], today);
        ngx_dr_limit_refill_locked(ln[i], wants[i].tier);

        if (!ngx_dr_limit_check_locked(ln[i], &wants[i], res)) {
            res->passed = 0;
        }
    }

    for (i = 0; i < n; i++) {
        if (res->passed && wants[i].cost) {
            ngx_dr_bucket_take(&ln[i]->bucket, wants[i].cost);
            ln[i]->consumed += wants[i].cost;

            if (wants[i].usage) {
                ln[i]->daily++;
            }
        }

        ngx_dr_limit_count_locked(ln[i], &wants[i], res, today);
        ngx_dr_limit_dirty_locked(ctx, ln[i]);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_dr_limit_most(wants, n, res);

    return NGX_OK;
}


/*
 * The buckets of the wants, made when new.  Making one may free another
 * just found to make room (it was full and flushed): all are looked up
 * again, and one missing means no room.
 */

static ngx_int_t
ngx_dr_limit_nodes_locked(ngx_dr_limit_conf_t *lcf, ngx_dr_shm_ctx_t *ctx,
    ngx_dr_limit_want_t *wants, ngx_uint_t n, ngx_dr_limit_node_t **ln)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (ngx_dr_limit_node_locked(lcf, ctx, &wants[i].key, wants[i].tier)
            == NULL)
        {
            return NGX_DECLINED;
        }
    }

    for (i = 0; i < n; i++) {
        ln[i] = ngx_dr_limit_lookup_locked(ctx, &wants[i].key);
        if (ln[i] == NULL) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* a new UTC day, and what the database knew of a key's usage */

static void
ngx_dr_limit_day_locked(ngx_dr_limit_node_t *ln, ngx_dr_limit_want_t *w,
    uint32_t today)
{
    if (ln->day != today) {
        ln->day = today;
        ln->daily = 0;
        ln->daily_seed = 0;
        ln->daily_remote = 0;
    }

    if (ln->key_id == 0 && w->key_id) {
        ln->key_id = w->key_id;
        ln->daily_seed = w->daily_seed;
    }
}


/* can the bucket give the want's cost (and a request of its quota)? */

static ngx_uint_t
ngx_dr_limit_check_locked(ngx_dr_limit_node_t *ln, ngx_dr_limit_want_t *w,
    ngx_dr_limit_result_t *res)
{
    w->refused = 0;

    if (w->tier->daily && ngx_dr_limit_daily_locked(ln) >= w->tier->daily) {
        res->daily_exhausted = 1;
        w->refused = 1;
        w->retry_after = res->daily_reset;
        w->retry_ms = (ngx_msec_t) res->daily_reset * 1000;
        return 0;
    }

    if (ngx_dr_bucket_wait(&ln->bucket, w->cost) == 0) {
        return 1;
    }

    w->refused = 1;
    w->retry_ms = ngx_dr_bucket_wait(&ln->bucket, w->cost);
    w->retry_after = (time_t) ngx_dr_bucket_retry_in(&ln->bucket, w->cost);

    return 0;
}


/* what is left of the bucket, and a key's usage counts for the flush */

static void
ngx_dr_limit_count_locked(ngx_dr_limit_node_t *ln, ngx_dr_limit_want_t *w,
    ngx_dr_limit_result_t *res, uint32_t today)
{
    uint64_t  used;

    w->remaining = ngx_dr_bucket_tokens(&ln->bucket);
    w->reset = (time_t) ngx_dr_bucket_full_in(&ln->bucket);

    if (w->tier->daily) {
        used = ngx_dr_limit_daily_locked(ln);
        res->daily_remaining = used < w->tier->daily
                               ? w->tier->daily - used : 0;
    }

    if (!w->usage || ln->key_id == 0) {
        return;
    }

    /*
     * counts wait for the next flush; those of a flush interval across
     * midnight go to the day the interval began on
     */

    if (ln->pending == 0 && ln->pending_rejected == 0) {
        ln->pending_day = today;
    }

    if (res->passed) {
        ln->pending++;

    } else {
        ln->pending_rejected++;
    }
}


/*
 * The most constraining bucket: of the refusing ones, the one that frees
 * last; when all passed, the one with the fewest tokens left.
 */

static void
ngx_dr_limit_most(ngx_dr_limit_want_t *wants, ngx_uint_t n,
    ngx_dr_limit_result_t *res)
{
    ngx_uint_t  i, most;

    most = 0;

    for (i = 1; i < n; i++) {
        if (res->passed ? wants[i].remaining < wants[most].remaining
                        : wants[i].refused
                          && (!wants[most].refused
                              || wants[i].retry_ms > wants[most].retry_ms))
        {
            most = i;
        }
    }

    res->most = most;
    res->remaining = wants[most].remaining;
    res->reset = wants[most].reset;

    if (!res->passed) {
        res->retry_after = wants[most].retry_after;
        res->retry_ms = wants[most].retry_ms;
    }
}


/*
 * A provider call: a request of the key's request bucket and, when the
 * provider has a token budget, its estimated tokens of the key's token
 * bucket; both or neither, so that a call refused for its tokens spends
 * no request.  When refused, retry_ms is the wait until both could pass.
 *
 * With "reserve", a call that cannot pass now takes its tokens ahead
 * (the buckets go below zero) and is told in retry_ms when they will have
 * come: calls waiting for a key are then served in the order they asked,
 * from every worker, and none waits behind calls that asked later.
 */

ngx_int_t
ngx_dr_limit_take_call(ngx_dr_limit_conf_t *lcf, ngx_str_t *key,
    ngx_dr_tier_t *tier, ngx_str_t *tkey, ngx_dr_tier_t *ttier,
    ngx_uint_t tokens, ngx_uint_t reserve, ngx_dr_limit_result_t *res)
{
    ngx_msec_t            wait;
    ngx_dr_shm_ctx_t     *ctx;
    ngx_dr_limit_node_t  *ln, *tn;

    ctx = lcf->shm_zone->data;
    ngx_memzero(res, sizeof(ngx_dr_limit_result_t));

    ngx_shmtx_lock(&ctx->shpool->mutex);

    tn = NULL;

    if (tkey) {
        tn = ngx_dr_limit_node_locked(lcf, ctx, tkey, ttier);
        if (tn == NULL) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_ERROR;
        }
    }

    /*
     * making the request bucket may evict the token bucket to find room:
     * the token bucket is looked up again, without making it
     */

    ln = ngx_dr_limit_node_locked(lcf, ctx, key, tier);

    if (tkey) {
        tn = (ngx_dr_limit_node_t *)
             ngx_dr_shm_lookup_locked(&ctx->sh->rbtree, tkey,
                                      ngx_crc32_short(tkey->data,
                                                      tkey->len));
    }

    if (ln == NULL || (tkey && tn == NULL)) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_ERROR;
    }

    ngx_dr_limit_refill_locked(ln, tier);

    wait = ngx_dr_bucket_wait(&ln->bucket, 1);

    if (tn) {
        ngx_dr_limit_refill_locked(tn, ttier);
        wait = ngx_max(wait, ngx_dr_bucket_wait(&tn->bucket, tokens));
    }

    if (wait == 0 || reserve) {
        ngx_dr_bucket_take(&ln->bucket, 1);
        ln->consumed++;
        ngx_dr_limit_dirty_locked(ctx, ln);

        if (tn) {
            ngx_dr_bucket_take(&tn->bucket, tokens);
            tn->consumed += tokens;
            ngx_dr_limit_dirty_locked(ctx, tn);
        }

        res->passed = 1;
    }

    res->retry_ms = wait;
    res->remaining = ngx_dr_bucket_tokens(&ln->bucket);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


/*
 * The bucket of key, made full when it is new.  Room is made only by
 * buckets that lose nothing by going: full, with their usage flushed and
 * their consumption told to the cluster; an anonymous client finds room
 * only in the anonymous reserve.  NULL: no room without forgiving
 * another client, and the new client is refused instead.
 */

static ngx_dr_limit_node_t *
ngx_dr_limit_node_locked(ngx_dr_limit_conf_t *lcf, ngx_dr_shm_ctx_t *ctx,
    ngx_str_t *key, ngx_dr_tier_t *tier)
{
    size_t                n;
    uint32_t              hash;
    ngx_uint_t            anonymous;
    ngx_queue_t          *lru;
    ngx_dr_limit_sh_t    *sh;
    ngx_dr_limit_node_t  *ln;

    sh = ngx_dr_limit_sh(ctx);
    hash = ngx_crc32_short(key->data, key->len);
    anonymous = ngx_dr_limit_is_anonymous(key);

    ln = (ngx_dr_limit_node_t *) ngx_dr_shm_lookup_locked(&sh->head.rbtree,
                                                          key, hash);
    if (ln) {
        lru = ln->anonymous ? &sh->anonymous : &sh->head.lru;
        ngx_queue_remove(&ln->sh.queue);
        ngx_queue_insert_head(lru, &ln->sh.queue);
        return ln;
    }

    n = offsetof(ngx_dr_limit_node_t, data) + key->len;
    ln = NULL;

    if (anonymous) {
        if (sh->nanonymous < lcf->anonymous_max) {
            ln = ngx_slab_alloc_locked(ctx->shpool, n);
        }

        if (ln == NULL && ngx_dr_limit_evict_locked(lcf, ctx, &sh->anonymous))
        {
            ln = ngx_slab_alloc_locked(ctx->shpool, n);
        }

    } else {
        ln = ngx_slab_alloc_locked(ctx->shpool, n);

        /* anonymous clients make room first, then other keys */

        if (ln == NULL
            && (ngx_dr_limit_evict_locked(lcf, ctx, &sh->anonymous)
                || ngx_dr_limit_evict_locked(lcf, ctx, &sh->head.lru)))
        {
            ln = ngx_slab_alloc_locked(ctx->shpool, n);
        }
    }

    if (ln == NULL) {
        sh->refused++;
        return NULL;
    }

    ngx_memzero(ln, offsetof(ngx_dr_limit_node_t, data));

    ln->sh.node.key = hash;
    ln->sh.key = ln->data;
    ln->sh.key_len = key->len;
    ngx_memcpy(ln->data, key->data, key->len);

    /* a new bucket is full */
    ngx_dr_bucket_init(&ln->bucket, tier->rate, tier->period, tier->burst,
                       ngx_current_msec);
    ln->day = (uint32_t) (ngx_time() / NGX_DR_LIMIT_DAY);
    ln->anonymous = anonymous;

    ngx_rbtree_insert(&sh->head.rbtree, &ln->sh.node);
    sh->nbuckets++;

    if (anonymous) {
        ngx_queue_insert_head(&sh->anonymous, &ln->sh.queue);
        sh->nanonymous++;

    } else {
        ngx_queue_insert_head(&sh->head.lru, &ln->sh.queue);
    }

    return ln;
}


/*
 * Frees, from the least recently used end of lru, up to a few buckets
 * that lose nothing by going; how many.
 */

static ngx_uint_t
ngx_dr_limit_evict_locked(ngx_dr_limit_conf_t *lcf, ngx_dr_shm_ctx_t *ctx,
    ngx_queue_t *lru)
{
    ngx_uint_t            looked, freed;
    ngx_queue_t          *q, *prev;
    ngx_dr_limit_sh_t    *sh;
    ngx_dr_limit_node_t  *ln;

    sh = ngx_dr_limit_sh(ctx);
    freed = 0;
    looked = 0;

    for (q = ngx_queue_last(lru);
         q != ngx_queue_sentinel(lru)
         && looked < NGX_DR_LIMIT_LOOK && freed < NGX_DR_LIMIT_EVICT;
         q = prev)
    {
        prev = ngx_queue_prev(q);
        ln = ngx_queue_data(q, ngx_dr_limit_node_t, sh.queue);
        looked++;

        if (ngx_dr_bucket_level(&ln->bucket, ngx_current_msec)
               < ln->bucket.cap
            || ln->pending || ln->pending_rejected
            || (lcf->sync_interval != NGX_CONF_UNSET_MSEC
                && ln->consumed != ln->pushed))
        {
            continue;
        }

        if (ln->anonymous) {
            sh->nanonymous--;
        }

        if (ln->in_dirty) {
            ngx_queue_remove(&ln->dirty);
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&sh->head.rbtree, &ln->sh.node);
        ngx_slab_free_locked(ctx->shpool, ln);
        sh->nbuckets--;
        freed++;
    }

    sh->evictions += freed;

    return freed;
}


/*
 * "t:<tier>:a:<network>", "l:<policy>:a:<network>" or
 * "l:<policy>:v:<value>": a bucket of the anonymous reserve, which no
 * churn of clients may grow past its half of the zone
 */

static ngx_uint_t
ngx_dr_limit_is_anonymous(ngx_str_t *key)
{
    u_char  *p;

    if (key->len < 4 || (key->data[0] != 't' && key->data[0] != 'l')
        || key->data[1] != ':')
    {
        return 0;
    }

    p = ngx_strlchr(key->data + 2, key->data + key->len, ':');

    return p && p + 2 < key->data + key->len
           && (p[1] == 'a' || p[1] == 'v') && p[2] == ':';
}


/*
 * What the bucket's client used of its daily quota: here, and elsewhere.
 * The database's figure (flushed usage of every node, when the bucket was
 * made) and the other nodes' own counts (cluster mode) overlap, so the
 * larger is taken: it never counts a request twice, and it misses at most
 * this node's own earlier requests still unflushed elsewhere.
 */

static uint64_t
ngx_dr_limit_daily_locked(ngx_dr_limit_node_t *ln)
{
    return ln->daily + ngx_max(ln->daily_seed, ln->daily_remote);
}


/* the bucket takes the tier it is used with, and its refill until now */

static void
ngx_dr_limit_refill_locked(ngx_dr_limit_node_t *ln, ngx_dr_tier_t *tier)
{
    ngx_dr_bucket_refill(&ln->bucket, tier->rate, tier->period, tier->burst,
                         ngx_current_msec);
}


/* the zone's figures, for the metrics */

ngx_int_t
ngx_dr_limit_stats(ngx_dr_limit_conf_t *lcf, ngx_dr_limit_stats_t *st)
{
    ngx_dr_shm_ctx_t   *ctx;
    ngx_dr_limit_sh_t  *sh;

    if (lcf->shm_zone == NULL) {
        return NGX_DECLINED;
    }

    ctx = lcf->shm_zone->data;
    sh = ngx_dr_limit_sh(ctx);

    st->zone = lcf->shm_zone->shm.name;
    st->buckets = sh->nbuckets;
    st->anonymous = sh->nanonymous;
    st->evictions = sh->evictions;
    st->refused = sh->refused;

    return NGX_OK;
}


/* the whole tokens of a bucket now, or -1 when there is none */

ngx_int_t
ngx_dr_limit_tokens(ngx_dr_limit_conf_t *lcf, ngx_str_t *key)
{
    int64_t               units;
    ngx_int_t             tokens;
    ngx_dr_shm_ctx_t     *ctx;
    ngx_dr_limit_node_t  *ln;

    if (lcf->shm_zone == NULL) {
        return -1;
    }

    ctx = lcf->shm_zone->data;
    tokens = -1;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ln = (ngx_dr_limit_node_t *)
         ngx_dr_shm_lookup_locked(&ctx->sh->rbtree, key,
                                  ngx_crc32_short(key->data, key->len));

    if (ln) {
        units = ngx_dr_bucket_level(&ln->bucket, ngx_current_msec);
        tokens = (units > 0)
                 ? (ngx_int_t) (units / (int64_t) ln->bucket.period) : 0;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return tokens;
}


/*
 * What a bucket holds for a report of its client's usage to the second:
 * its counts not yet flushed to usage_daily (row->day is their day) and
 * what it used of its daily quota today (row->daily); NGX_DECLINED when
 * the zone has no such bucket.
 */

ngx_int_t
ngx_dr_limit_usage(ngx_dr_limit_conf_t *lcf, ngx_str_t *key,
    ngx_dr_limit_row_t *row)
{
    uint32_t              today;
    ngx_dr_shm_ctx_t     *ctx;
    ngx_dr_limit_node_t  *ln;

    ngx_memzero(row, sizeof(ngx_dr_limit_row_t));

    if (lcf->shm_zone == NULL) {
        return NGX_DECLINED;
    }

    ctx = lcf->shm_zone->data;
    today = (uint32_t) (ngx_time() / NGX_DR_LIMIT_DAY);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ln = ngx_dr_limit_lookup_locked(ctx, key);

    if (ln) {
        row->key_id = ln->key_id;
        row->day = ln->pending_day;
        row->n = ln->pending;
        row->rejected = ln->pending_rejected;
        row->daily = (ln->day == today) ? ngx_dr_limit_daily_locked(ln) : 0;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return ln ? NGX_OK : NGX_DECLINED;
}


/* headers of every answer */


ngx_int_t
ngx_dr_limit_headers(ngx_http_request_t *r, ngx_dr_limit_want_t *wants,
    ngx_uint_t n, ngx_dr_limit_result_t *res)
{
    u_char               *p;
    size_t                len;
    ngx_str_t             value;
    ngx_uint_t            i;
    ngx_dr_tier_t        *daily;
    ngx_dr_limit_want_t  *most;

    static ngx_str_t  policy_key = ngx_string("RateLimit-Policy");
    static ngx_str_t  limit_key = ngx_string("RateLimit");
    static ngx_str_t  xlimit_key = ngx_string("X-RateLimit-Limit");
    static ngx_str_t  xremaining_key = ngx_string("X-RateLimit-Remaining");
    static ngx_str_t  xreset_key = ngx_string("X-RateLimit-Reset");
    static ngx_str_t  retry_key = ngx_string("Retry-After");

    /*
     * The IETF httpapi draft's structured fields: a policy per limit that
     * applied, "q" requests a window of "w" seconds; and for the most
     * constraining one (and the daily quota) the requests left "r" and
     * the seconds "t" until it is whole again.
     */

    most = &wants[ngx_min(res->most, n - 1)];
    daily = NULL;
    len = sizeof(", \"daily\";q=;w=86400") + NGX_INT_T_LEN;

    for (i = 0; i < n; i++) {
        len += wants[i].name.len + 2 * NGX_INT_T_LEN + sizeof(", \"\";q=;w=");

        if (wants[i].tier->daily) {
            daily = wants[i].tier;
        }
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%s\"%V\";q=%ui;w=%M", i ? ", " : "",
                        &wants[i].name, wants[i].tier->rate,
                        wants[i].tier->period / 1000);
    }

    if (daily) {
        p = ngx_sprintf(p, ", \"daily\";q=%ui;w=86400", daily->daily);
    }

    value.len = p - value.data;

    if (ngx_dr_http_header(r, &policy_key, &value, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    len = most->name.len + 4 * NGX_INT_T_LEN
          + sizeof("\"\";r=;t=, \"daily\";r=;t=");

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    p = ngx_sprintf(p, "\"%V\";r=%ui;t=%T", &most->name, res->remaining,
                    res->reset);

    if (daily) {
        p = ngx_sprintf(p, ", \"daily\";r=%ui;t=%T", res->daily_remaining,
                        res->daily_reset);
    }

    value.len = p - value.data;

    if (ngx_dr_http_header(r, &limit_key, &value, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 3 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%ui", most->tier->rate) - p;
    p += value.len;

    if (ngx_dr_http_header(r, &xlimit_key, &value, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%ui", res->remaining) - p;
    p += value.len;

    if (ngx_dr_http_header(r, &xremaining_key, &value, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%T", res->reset) - p;

    if (ngx_dr_http_header(r, &xreset_key, &value, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    if (res->passed) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%T", res->retry_after) - p;

    return ngx_dr_http_header(r, &retry_key, &value, NULL);
}


/*
 * What the usage flush and the cluster sync (ngx_dr_usage.c) take from
 * the buckets, under the zone's lock: the rows of a batch, one for each
 * bucket that has something to tell, its counts moved into the row.
 */

ngx_array_t *
ngx_dr_limit_collect(ngx_dr_limit_conf_t *lcf, ngx_pool_t *pool,
    ngx_uint_t what)
{
    ngx_queue_t          *q, *next, *dirty;
    ngx_array_t          *rows;
    ngx_dr_shm_ctx_t     *ctx;
    ngx_dr_limit_row_t   *row;
    ngx_dr_limit_node_t  *ln;
    ngx_dr_limit_pick_pt  pick;

    ctx = lcf->shm_zone->data;
    pick = (what == NGX_DR_LIMIT_PENDING) ? ngx_dr_limit_pending
                                          : ngx_dr_limit_consumed;

    rows = ngx_array_create(pool, 64, sizeof(ngx_dr_limit_row_t));
    if (rows == NULL) {
        return NULL;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    dirty = &ngx_dr_limit_sh(ctx)->dirty;

    for (q = ngx_queue_head(dirty); q != ngx_queue_sentinel(dirty); q = next)
    {
        next = ngx_queue_next(q);
        ln = ngx_queue_data(q, ngx_dr_limit_node_t, dirty);

        if (!pick(ln, NULL)) {
            ngx_dr_limit_clean_locked(lcf, ln);
            continue;
        }

        row = ngx_array_push(rows);
        if (row == NULL) {
            break;
        }

        row->key.data = ngx_pnalloc(pool, ln->sh.key_len);
        if (row->key.data == NULL) {
            rows->nelts--;
            break;
        }

        row->key.len = ln->sh.key_len;
        ngx_memcpy(row->key.data, ln->sh.key, ln->sh.key_len);

        (void) pick(ln, row);
        ngx_dr_limit_clean_locked(lcf, ln);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rows;
}


/* a key's requests and refusals not yet flushed to its daily usage */

static ngx_uint_t
ngx_dr_limit_pending(ngx_dr_limit_node_t *ln, ngx_dr_limit_row_t *row)
{
    if (ln->key_id == 0 || (ln->pending == 0 && ln->pending_rejected == 0)) {
        return 0;
    }

    if (row) {
        row->key_id = ln->key_id;
        row->day = ln->pending_day;
        row->n = ln->pending;
        row->rejected = ln->pending_rejected;

        ln->pending = 0;
        ln->pending_rejected = 0;
    }

    return 1;
}


/* a bucket's consumption the cluster has not been told */

static ngx_uint_t
ngx_dr_limit_consumed(ngx_dr_limit_node_t *ln, ngx_dr_limit_row_t *row)
{
    if (ln->consumed == ln->pushed && ln->daily == ln->daily_pushed) {
        return 0;
    }

    if (row) {
        row->n = ln->consumed;
        row->day = ln->day;
        row->daily = ln->daily;
        ln->pushed = ln->consumed;
        ln->daily_pushed = ln->daily;
    }

    return 1;
}


/*
 * The rows of a batch back in their buckets, those still there: counts
 * the database did not take go back for the next attempt
 * (NGX_DR_LIMIT_PENDING; NGX_DR_LIMIT_CONSUMED is pushed again from
 * zero, the others keep the highest figure they saw), and what the other
 * nodes took (NGX_DR_LIMIT_REMOTE, row->n their total) is taken from the
 * local bucket.
 */

void
ngx_dr_limit_apply(ngx_dr_limit_conf_t *lcf, ngx_array_t *rows,
    ngx_uint_t what)
{
    ngx_uint_t            i;
    ngx_dr_shm_ctx_t     *ctx;
    ngx_dr_limit_row_t   *row;
    ngx_dr_limit_node_t  *ln;

    ctx = lcf->shm_zone->data;
    row = rows->elts;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (i = 0; i < rows->nelts; i++) {
        ln = ngx_dr_limit_lookup_locked(ctx, &row[i].key);
        if (ln == NULL) {
            continue;
        }

        switch (what) {

        case NGX_DR_LIMIT_PENDING:
            ln->pending += row[i].n;
            ln->pending_rejected += row[i].rejected;
            ngx_dr_limit_dirty_locked(ctx, ln);
            break;

        case NGX_DR_LIMIT_CONSUMED:
            ln->pushed = 0;
            ln->daily_pushed = (uint64_t) -1;
            ngx_dr_limit_dirty_locked(ctx, ln);
            break;

        default: /* NGX_DR_LIMIT_REMOTE */
            if (row[i].day == ln->day) {
                ln->daily_remote = row[i].daily;
            }

            if (row[i].recent) {
                ngx_dr_limit_remote_locked(ln, row[i].n);
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


static void
ngx_dr_limit_remote_locked(ngx_dr_limit_node_t *ln, uint64_t others)
{
    if (others < ln->remote) {
        /* another node restarted and counts from zero */
        ln->remote = others;
        ln->synced = 1;
        return;
    }

    if (!ln->synced) {
        /*
         * A bucket new here: what the others took before it existed is
         * not its debt, but while it was full, so were theirs.  Taking at
         * most one burst of their consumption makes the buckets of all
         * nodes together start as one.
         */
        ln->remote = others;
        ln->synced = 1;
        ngx_dr_bucket_debit(&ln->bucket, others, ln->bucket.cap);
        return;
    }

    ngx_dr_bucket_debit(&ln->bucket, others - ln->remote, -1);
    ln->remote = others;
}


/* a bucket with news for the flush or the cluster */

static void
ngx_dr_limit_dirty_locked(ngx_dr_shm_ctx_t *ctx, ngx_dr_limit_node_t *ln)
{
    if (!ln->in_dirty) {
        ngx_queue_insert_tail(&ngx_dr_limit_sh(ctx)->dirty, &ln->dirty);
        ln->in_dirty = 1;
    }
}


/* one with none left: out of the walk (counts of the cluster only count
 * where there is a cluster) */

static void
ngx_dr_limit_clean_locked(ngx_dr_limit_conf_t *lcf, ngx_dr_limit_node_t *ln)
{
    if (ln->pending || ln->pending_rejected
        || (lcf->sync_interval != NGX_CONF_UNSET_MSEC
            && (ln->consumed != ln->pushed || ln->daily != ln->daily_pushed)))
    {
        return;
    }

    ngx_queue_remove(&ln->dirty);
    ln->in_dirty = 0;
}


static ngx_dr_limit_node_t *
ngx_dr_limit_lookup_locked(ngx_dr_shm_ctx_t *ctx, ngx_str_t *key)
{
    return (ngx_dr_limit_node_t *)
           ngx_dr_shm_lookup_locked(&ctx->sh->rbtree, key,
                                    ngx_crc32_short(key->data, key->len));
}


/*
 * Domain Runner: GET and POST /admin/facts, what an operator knows to be
 * true of a domain, against which every stored answer is grounded
 * (ngx_dr_ground.c).
 *
 * Posting a domain's facts replaces them all, in one statement with its
 * audit row, and queues the rescore of the domain's runs: their grounding
 * is written again, in order, from the stored answers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_dr_module.h"
#include "ngx_dr_http.h"
#include "ngx_dr_validate.h"
#include "ngx_dr_ground.h"
#include "ngx_dr_rescore.h"
#include "ngx_dr_facts.h"


/* facts of one domain, and aliases of one fact */
#define NGX_DR_FACTS_MAX        100
#define NGX_DR_FACTS_ALIASES    10


static ngx_int_t ngx_dr_facts_listed(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static ngx_int_t ngx_dr_facts_stored(ngx_http_request_t *r,
    ngx_dr_pg_query_t *q);
static json_t *ngx_dr_facts_fact(ngx_http_request_t *r, json_t *in,
    size_t i, ngx_int_t *rc);
static ngx_int_t ngx_dr_facts_text(json_t *v, int key);


/*
 * The facts given are upserted and the others of the domain deleted: a
 * value kept keeps its row.  The domain's row is locked first
 * (sql/021): sets posted at once do not mix.
 */
static const char  ngx_dr_facts_set_sql[] =
    "SELECT * FROM dr_facts_set($1, $2::jsonb, $3::int8, $4)";

static const char  ngx_dr_facts_list_sql[] =
    "SELECT d.domain,"
    " coalesce((SELECT json_agg(json_build_object('key', f.key, 'value',"
    "  f.value, 'aliases', to_json(f.aliases)) ORDER BY f.key, f.value)"
    "  FROM domain_facts f WHERE f.domain_id = d.id), '[]'),"
    " (SELECT s.grounding FROM domain_scores s WHERE s.domain_id = d.id"
    "  ORDER BY s.computed_at DESC, s.run_id DESC LIMIT 1),"
    " (SELECT s.run_id FROM domain_scores s WHERE s.domain_id = d.id"
    "  ORDER BY s.computed_at DESC, s.run_id DESC LIMIT 1) "
    "FROM domains d WHERE d.domain = $1";


/* GET /admin/facts?domain= */

ngx_int_t
ngx_dr_facts_list(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_str_t    arg, domain;
    ngx_int_t    rc;
    const char  *params[1];

    if (ngx_http_arg(r, (u_char *) "domain", 6, &arg) != NGX_OK) {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                 "invalid_parameter",
                                 "domain: the domain whose facts to list "
                                 "is needed");
    }

    rc = ngx_dr_http_domain(r, arg.data, arg.len, &domain);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    params[0] = (const char *) domain.data;

    return ngx_dr_http_query(r, 0, 0, ngx_dr_facts_list_sql, 1, params,
                             ngx_dr_facts_listed);
}


/* POST /admin/facts {domain, facts: [{key, value, aliases?}]} */

ngx_int_t
ngx_dr_facts_set(ngx_http_request_t *r, ngx_str_t *id,
    json_t *body)
{
    size_t       i, k;
    json_t      *facts, *list, *f;
    ngx_int_t    rc;
    ngx_str_t    name, text;
    const char  *params[4];

    rc = ngx_dr_http_fields(r, body, "domain, facts");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    facts = json_object_get(body, "facts");

    rc = ngx_dr_http_body_domain(r, body, &name);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (!json_is_array(facts) || json_array_size(facts) > NGX_DR_FACTS_MAX)
    {
        return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                 "facts: a list of at most %d facts "
                                 "{key, value, aliases?} is needed",
                                 NGX_DR_FACTS_MAX);
    }

    list = json_array();
    if (list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < json_array_size(facts); i++) {
        f = ngx_dr_facts_fact(r, json_array_get(facts, i), i, &rc);

        if (f == NULL) {
            json_decref(list);
            return rc;
        }

        for (k = 0; k < json_array_size(list); k++) {
            if (json_equal(json_object_get(json_array_get(list, k), "key"),
                           json_object_get(f, "key"))
                && json_equal(json_object_get(json_array_get(list, k),
                                              "value"),
                              json_object_get(f, "value")))
            {
                json_decref(f);
                json_decref(list);
                return ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_body",
                                         "facts[%uz]: the same key and "
                                         "value as facts[%uz]", i, k);
            }
        }

        json_array_append_new(list, f);
    }

    rc = ngx_dr_json_dump(r->pool, list, &text);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = (const char *) name.data;
    params[1] = (const char *) ngx_dr_cstr(r->pool, &text);

    if (params[1] == NULL || ngx_dr_request_actor(r, &params[2]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_dr_http_query(r, 0, 0, ngx_dr_facts_set_sql, 4, params,
                             ngx_dr_facts_stored);
}


/*
 * One fact, checked and made plain: {key, value, aliases}; NULL with the
 * error sent and its code in rc.  A founding year may be a number.
 */

static json_t *
ngx_dr_facts_fact(ngx_http_request_t *r, json_t *in, size_t i, ngx_int_t *rc)
{
    int          key;
    size_t       k;
    json_t      *name, *value, *aliases, *a, *out, *seen;
    const char  *s;
    char         year[NGX_INT_T_LEN + 1];

    *rc = NGX_OK;

    if (!json_is_object(in)) {
        goto bad;
    }

    json_object_foreach(in, s, a) {
        if (ngx_strcmp(s, "key") != 0 && ngx_strcmp(s, "value") != 0
            && ngx_strcmp(s, "aliases") != 0)
        {
            goto bad;
        }
    }

    name = json_object_get(in, "key");
    value = json_object_get(in, "value");
    aliases = json_object_get(in, "aliases");

    key = json_is_string(name)
          ? ngx_dr_ground_key(json_string_value(name),
                              json_string_length(name))
          : -1;

    if (key < 0) {
        *rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                "facts[%uz].key: one of founded, "
                                "headquarters, category, founders, "
                                "products or former_names is needed", i);
        return NULL;
    }

    if (key == NGX_DR_GROUND_FOUNDED && json_is_integer(value)
        && json_integer_value(value) >= 0
        && json_integer_value(value) <= 9999)
    {
        (void) ngx_sprintf((u_char *) year, "%d%Z",
                           (int) json_integer_value(value));
        value = json_string(year);

    } else {
        json_incref(value);
    }

    if (ngx_dr_facts_text(value, key) != NGX_OK) {
        json_decref(value);
        *rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                "facts[%uz].value: %s", i,
                                key == NGX_DR_GROUND_FOUNDED
                                ? "a year from 1800 to 2099 is needed"
                                : "a text of 1 to 200 bytes, at most 16 "
                                  "words in one sentence, is needed");
        return NULL;
    }

    out = json_pack("{s:s, s:o, s:[]}", "key", ngx_dr_ground_key_name(key),
                    "value", value, "aliases");
    if (out == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    if (aliases == NULL || json_is_null(aliases)) {
        return out;
    }

    if (!json_is_array(aliases)
        || json_array_size(aliases) > NGX_DR_FACTS_ALIASES)
    {
        json_decref(out);
        *rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                "facts[%uz].aliases: a list of at most %d "
                                "texts is needed", i, NGX_DR_FACTS_ALIASES);
        return NULL;
    }

    seen = json_object_get(out, "aliases");

    json_array_foreach(aliases, k, a) {
        if (ngx_dr_facts_text(a, key) != NGX_OK) {
            json_decref(out);
            *rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                                    "facts[%uz].aliases[%uz]: a value of "
                                    "the fact's key is needed", i, k);
            return NULL;
        }

        json_array_append(seen, a);
    }

    return out;

bad:

    *rc = ngx_dr_json_error(r, NGX_HTTP_BAD_REQUEST, "invalid_body",
                            "facts[%uz]: an object {key, value, aliases?} "
                            "is needed", i);
    return NULL;
}


static ngx_int_t
ngx_dr_facts_text(json_t *v, int key)
{
    if (!json_is_string(v)
        || ngx_strlen(json_string_value(v)) != json_string_length(v)
        || ngx_dr_ground_value(key, json_string_value(v),
                               json_string_length(v))
           != NGX_DR_GROUND_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_dr_facts_listed(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    json_t  *facts, *grounding;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no such domain");
    }

    facts = json_loads(PQgetvalue(q->res, 0, 1), 0, NULL);
    grounding = PQgetisnull(q->res, 0, 2)
                ? json_null()
                : json_loads(PQgetvalue(q->res, 0, 2), 0, NULL);

    return ngx_dr_json_send(r, NGX_HTTP_OK,
        json_pack("{s:s, s:o?, s:o?, s:o}",
                  "domain", PQgetvalue(q->res, 0, 0),
                  "facts", facts,
                  "grounding", grounding,
                  "run_id", PQgetisnull(q->res, 0, 3)
                            ? json_null()
                            : json_integer(strtoll(PQgetvalue(q->res, 0, 3),
                                                   NULL, 10))));
}


static ngx_int_t
ngx_dr_facts_stored(ngx_http_request_t *r, ngx_dr_pg_query_t *q)
{
    u_char      *p;
    json_t      *facts;
    ngx_uint_t   queued;

    if (q->rc != NGX_DR_PG_OK) {
        return ngx_dr_http_unavailable(r, q);
    }

    if (PQntuples(q->res) != 1) {
        return ngx_dr_json_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                 "no such domain: add it with POST "
                                 "/admin/domains first");
    }

    /* the grounding of the domain's runs follows its facts */

    p = ngx_pnalloc(r->pool, NGX_DR_DOMAIN_MAX + 3);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_sprintf(p, "{%s}%Z", PQgetvalue(q->res, 0, 0));

    queued = (ngx_dr_rescore_domains((const char *) p) == NGX_OK);

    if (!queued) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "the rescore of %s after its facts changed could "
                      "not be queued: POST /admin/rescore will do it",
                      PQgetvalue(q->res, 0, 0));
    }

    facts = json_loads(PQgetvalue(q->res, 0, 2), 0, NULL);

    return ngx_dr_json_send(r, NGX_HTTP_OK,
        json_pack("{s:s, s:o?, s:I, s:b}",
                  "domain", PQgetvalue(q->res, 0, 0),
                  "facts", facts,
                  "removed", (json_int_t) strtoll(PQgetvalue(q->res, 0, 1),
                                                  NULL, 10),
                  "rescore_queued", (int) queued));
}

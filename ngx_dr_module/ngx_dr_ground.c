
/*
 * Domain Runner: grounding of stored answers against a domain's facts.
 *
 * Text is read as tokens: maximal runs of ASCII letters and digits, bytes
 * >= 0x80 counting as letters (the typographic apostrophes U+2018 and
 * U+2019 split words), compared without ASCII case.  A value is stated
 * where its tokens follow one another in the answer within a sentence,
 * so "San Francisco", "san-francisco" and "SAN FRANCISCO," all state
 * "San Francisco".  Founding years and headquarters are read only after
 * the words that introduce them, which is also where another value of
 * the same kind contradicts the fact; the other keys have no closed set
 * of alternatives and are only ever supported.  docs/scoring.md gives the
 * rules and the reasons.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_dr_ground.h"


typedef struct {
    const unsigned char          *data;
    size_t                        len;
    int                           brk;     /* a sentence ends before it */
} ngx_dr_ground_tok_t;


typedef struct {
    ngx_dr_ground_tok_t           tok[NGX_DR_GROUND_TOKENS_MAX];
    size_t                        n;
} ngx_dr_ground_phrase_t;


/* the text of an answer, as tokens */
typedef struct {
    ngx_dr_ground_tok_t          *tok;
    size_t                        n;
} ngx_dr_ground_text_t;


/* one answer being read: what it supports and contradicts */
typedef struct {
    const ngx_dr_ground_fact_t   *facts;
    size_t                        n_facts;
    const ngx_dr_ground_text_t   *text;
    unsigned char                *sup;
    unsigned char                *con;
} ngx_dr_ground_read_t;


static size_t ngx_dr_ground_tokenize(const unsigned char *p, size_t len,
    ngx_dr_ground_tok_t *tok, size_t max);
static int ngx_dr_ground_is_word(const unsigned char *p,
    const unsigned char *end, size_t *skip);
static int ngx_dr_ground_tok_is(const ngx_dr_ground_tok_t *t,
    const char *word);
static int ngx_dr_ground_tok_eq(const ngx_dr_ground_tok_t *a,
    const ngx_dr_ground_tok_t *b);
static size_t ngx_dr_ground_match(const ngx_dr_ground_text_t *text,
    size_t at, size_t end, const char *phrase);
static size_t ngx_dr_ground_match_before(const ngx_dr_ground_text_t *text,
    size_t at, const char *phrase);
static int ngx_dr_ground_year(const ngx_dr_ground_tok_t *t);
static void ngx_dr_ground_founded(ngx_dr_ground_read_t *rd, size_t cue);
static void ngx_dr_ground_place(ngx_dr_ground_read_t *rd, size_t from,
    size_t to);
static void ngx_dr_ground_place_before(ngx_dr_ground_read_t *rd,
    size_t at);
static size_t ngx_dr_ground_fact_at(ngx_dr_ground_read_t *rd, int key,
    size_t at, size_t end, size_t before);
static void ngx_dr_ground_stated(ngx_dr_ground_read_t *rd, int key);
static int ngx_dr_ground_tok_in(const ngx_dr_ground_tok_t *t,
    const char **words);
static void ngx_dr_ground_anywhere(ngx_dr_ground_read_t *rd);
static int ngx_dr_ground_model_cmp(const void *a, const void *b);


static const char  *ngx_dr_ground_keys[NGX_DR_GROUND_KEYS] = {
    "founded", "headquarters", "category", "founders", "products",
    "former_names"
};


/* the words after which a founding year is read */
static const char  *ngx_dr_ground_year_cues[] = {
    "established", "founded", "incorporated", NULL
};


/* the words after which a headquarters is read ("based in" too) */
static const char  *ngx_dr_ground_place_cues[] = {
    "headquartered", "headquarters", "hq", NULL
};


/*
 * Cities a headquarters is commonly given as.  One named after a
 * headquarters cue that is none of the domain's headquarters contradicts
 * them.  No state or country is listed ("Redmond, Washington" names
 * Washington the state), nor a city that is also a common word.
 */
static const char  *ngx_dr_ground_cities[] = {
    "amsterdam", "atlanta", "austin", "bangalore", "barcelona", "beijing",
    "bengaluru", "berlin", "boston", "brooklyn", "brussels", "chicago",
    "copenhagen", "cupertino", "dallas", "denver", "dubai", "dublin",
    "edinburgh", "hamburg", "helsinki", "hong kong", "houston",
    "istanbul", "jakarta", "las vegas", "lisbon", "london",
    "los angeles", "los gatos", "madrid", "melbourne", "menlo park",
    "miami", "milan", "montreal", "moscow", "mountain view", "mumbai",
    "munich", "new delhi", "new york", "oslo", "ottawa", "palo alto",
    "paris", "redmond", "redwood city", "rome", "san diego",
    "san francisco", "san jose", "san mateo", "santa clara", "sao paulo",
    "seattle", "seoul", "shanghai", "shenzhen", "singapore", "stockholm",
    "sunnyvale", "sydney", "taipei", "tel aviv", "tokyo", "toronto",
    "vancouver", "vienna", "warsaw", "waterloo", "zurich", NULL
};


int
ngx_dr_ground_key(const char *name, size_t len)
{
    int  k;

    if (name == NULL) {
        return -1;
    }

    for (k = 0; k < NGX_DR_GROUND_KEYS; k++) {
        if (strlen(ngx_dr_ground_keys[k]) == len
            && memcmp(ngx_dr_ground_keys[k], name, len) == 0)
        {
            return k;
        }
    }

    return -1;
}


const char *
ngx_dr_ground_key_name(int key)
{
    if (key < 0 || key >= NGX_DR_GROUND_KEYS) {
        return "unknown";
    }

    return ngx_dr_ground_keys[key];
}


const char *
ngx_dr_ground_status_name(int status)
{
    switch (status) {
    case NGX_DR_GROUND_SUPPORTED:
        return "supported";
    case NGX_DR_GROUND_CONTRADICTED:
        return "contradicted";
    default:
        return "unmentioned";
    }
}


/* a fact over the models: verified, disputed, contradicted, unverified */

const char *
ngx_dr_ground_fact_status(const ngx_dr_ground_count_t *c)
{
    if (c->supported && c->contradicted) {
        return "disputed";
    }

    if (c->supported) {
        return "verified";
    }

    if (c->contradicted) {
        return "contradicted";
    }

    return "unverified";
}


/*
 * A founding year is four digits from 1800 to 2099; any other value is
 * 1 to NGX_DR_GROUND_VALUE_MAX bytes without control characters, of 1 to
 * NGX_DR_GROUND_TOKENS_MAX tokens in one sentence.
 */

int
ngx_dr_ground_value(int key, const char *value, size_t len)
{
    size_t               i, n;
    ngx_dr_ground_tok_t  tok[NGX_DR_GROUND_TOKENS_MAX + 1];

    if (value == NULL || len == 0 || len > NGX_DR_GROUND_VALUE_MAX
        || key < 0 || key >= NGX_DR_GROUND_KEYS)
    {
        return NGX_DR_GROUND_EINVAL;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) value[i] < 0x20 || value[i] == 0x7f) {
            return NGX_DR_GROUND_EINVAL;
        }
    }

    n = ngx_dr_ground_tokenize((const unsigned char *) value, len, tok,
                               NGX_DR_GROUND_TOKENS_MAX + 1);

    if (n == 0 || n > NGX_DR_GROUND_TOKENS_MAX) {
        return NGX_DR_GROUND_EINVAL;
    }

    /* a value over two sentences could never be stated */
    for (i = 1; i < n; i++) {
        if (tok[i].brk) {
            return NGX_DR_GROUND_EINVAL;
        }
    }

    if (key == NGX_DR_GROUND_FOUNDED
        && (n != 1 || len != 4 || ngx_dr_ground_year(&tok[0]) < 0))
    {
        return NGX_DR_GROUND_EINVAL;
    }

    return NGX_DR_GROUND_OK;
}


/*
 * What one answer says of each fact: supported when it states the fact's
 * value or an alias; otherwise contradicted when it states another value
 * of the same kind that no fact of that key has; otherwise unmentioned.
 */

int
ngx_dr_ground_answer(const ngx_dr_ground_fact_t *facts, size_t n,
    const char *text, size_t len, unsigned char *status)
{
    size_t                 i, max;
    ngx_dr_ground_read_t   rd;
    ngx_dr_ground_text_t   t;

    if ((facts == NULL && n) || (text == NULL && len) || status == NULL) {
        return NGX_DR_GROUND_EINVAL;
    }

    for (i = 0; i < n; i++) {
        if (facts[i].key < 0 || facts[i].key >= NGX_DR_GROUND_KEYS
            || facts[i].value == NULL
            || (facts[i].aliases == NULL && facts[i].n_aliases))
        {
            return NGX_DR_GROUND_EINVAL;
        }
    }

    if (n == 0) {
        return NGX_DR_GROUND_OK;
    }

    max = len / 2 + 1;

    t.tok = malloc(max * sizeof(ngx_dr_ground_tok_t));
    rd.sup = calloc(2 * n, 1);

    if (t.tok == NULL || rd.sup == NULL) {
        free(t.tok);
        free(rd.sup);
        return NGX_DR_GROUND_ENOMEM;
    }

    t.n = ngx_dr_ground_tokenize((const unsigned char *) text, len, t.tok,
                                 max);

    rd.facts = facts;
    rd.n_facts = n;
    rd.text = &t;
    rd.con = rd.sup + n;

    for (i = 0; i < t.n; i++) {

        if (ngx_dr_ground_tok_in(&t.tok[i], ngx_dr_ground_year_cues)) {
            ngx_dr_ground_founded(&rd, i);
            continue;
        }

        if (ngx_dr_ground_tok_in(&t.tok[i], ngx_dr_ground_place_cues)) {
            ngx_dr_ground_place(&rd, i + 1, i + 1
                                            + NGX_DR_GROUND_PLACE_WINDOW);
            continue;
        }

        if (ngx_dr_ground_tok_is(&t.tok[i], "based")) {
            /* "San Francisco-based", "based in Dublin" */
            ngx_dr_ground_place_before(&rd, i);

            if (i + 1 < t.n && !t.tok[i + 1].brk
                && ngx_dr_ground_tok_is(&t.tok[i + 1], "in"))
            {
                ngx_dr_ground_place(&rd, i + 2, i + 1
                                            + NGX_DR_GROUND_PLACE_WINDOW);
            }
        }
    }

    ngx_dr_ground_anywhere(&rd);

    for (i = 0; i < n; i++) {
        status[i] = rd.sup[i] ? NGX_DR_GROUND_SUPPORTED
                    : rd.con[i] ? NGX_DR_GROUND_CONTRADICTED
                    : NGX_DR_GROUND_UNMENTIONED;
    }

    free(t.tok);
    free(rd.sup);

    return NGX_DR_GROUND_OK;
}


/* the first year within the window after a cue, in the same sentence */

static void
ngx_dr_ground_founded(ngx_dr_ground_read_t *rd, size_t cue)
{
    size_t                     i, k, a;
    const ngx_dr_ground_fact_t *f;
    const ngx_dr_ground_text_t *t;
    int                        year, known;

    t = rd->text;

    for (i = cue + 1; i < t->n && i <= cue + NGX_DR_GROUND_YEAR_WINDOW;
         i++)
    {
        if (t->tok[i].brk) {
            return;
        }

        year = ngx_dr_ground_year(&t->tok[i]);
        if (year < 0) {
            continue;
        }

        known = 0;

        for (k = 0; k < rd->n_facts; k++) {
            f = &rd->facts[k];

            if (f->key != NGX_DR_GROUND_FOUNDED) {
                continue;
            }

            if (ngx_dr_ground_match(t, i, i + 1, f->value)) {
                rd->sup[k] = 1;
                known = 1;
            }

            for (a = 0; a < f->n_aliases; a++) {
                if (ngx_dr_ground_match(t, i, i + 1, f->aliases[a])) {
                    rd->sup[k] = 1;
                    known = 1;
                }
            }
        }

        if (!known) {
            ngx_dr_ground_stated(rd, NGX_DR_GROUND_FOUNDED);
        }

        return;
    }
}


/*
 * The places named in tokens [from, to) of one sentence: the domain's
 * headquarters are supported; a listed city none of them is contradicts
 * them all.
 */

static void
ngx_dr_ground_place(ngx_dr_ground_read_t *rd, size_t from, size_t to)
{
    size_t                       i, k, m, end;
    const char                  *c;
    const ngx_dr_ground_text_t  *t;

    t = rd->text;
    end = to < t->n ? to : t->n;

    for (i = from; i < end; i++) {

        if (t->tok[i].brk) {
            return;
        }

        m = ngx_dr_ground_fact_at(rd, NGX_DR_GROUND_HEADQUARTERS, i,
                                  t->n, 0);
        if (m) {
            i += m - 1;
            continue;
        }

        for (k = 0; ngx_dr_ground_cities[k]; k++) {
            c = ngx_dr_ground_cities[k];
            m = ngx_dr_ground_match(t, i, t->n, c);

            if (m) {
                ngx_dr_ground_stated(rd, NGX_DR_GROUND_HEADQUARTERS);
                i += m - 1;
                break;
            }
        }
    }
}


/* a place that ends right before "based": "San Francisco-based" */

static void
ngx_dr_ground_place_before(ngx_dr_ground_read_t *rd, size_t at)
{
    size_t       k;
    const char  *c;

    if (at == 0 || rd->text->tok[at].brk) {
        return;
    }

    if (ngx_dr_ground_fact_at(rd, NGX_DR_GROUND_HEADQUARTERS, at, at, 1)) {
        return;
    }

    for (k = 0; ngx_dr_ground_cities[k]; k++) {
        c = ngx_dr_ground_cities[k];

        if (ngx_dr_ground_match_before(rd->text, at, c)) {
            ngx_dr_ground_stated(rd, NGX_DR_GROUND_HEADQUARTERS);
            return;
        }
    }
}


/*
 * The facts of key whose value or alias starts at token "at" (before 0)
 * or ends right before it (before 1): they are supported; returns the
 * tokens of the longest match, 0 for none.
 */

static size_t
ngx_dr_ground_fact_at(ngx_dr_ground_read_t *rd, int key, size_t at,
    size_t end, size_t before)
{
    size_t                       k, a, m, best;
    const char                  *v;
    const ngx_dr_ground_fact_t  *f;

    best = 0;

    for (k = 0; k < rd->n_facts; k++) {
        f = &rd->facts[k];

        if (f->key != key) {
            continue;
        }

        for (a = 0; a <= f->n_aliases; a++) {
            v = (a == 0) ? f->value : f->aliases[a - 1];

            m = before ? ngx_dr_ground_match_before(rd->text, at, v)
                       : ngx_dr_ground_match(rd->text, at, end, v);

            if (m) {
                rd->sup[k] = 1;

                if (m > best) {
                    best = m;
                }
            }
        }
    }

    return best;
}


/* another value of key was stated: every fact of key is contradicted */

static void
ngx_dr_ground_stated(ngx_dr_ground_read_t *rd, int key)
{
    size_t  k;

    for (k = 0; k < rd->n_facts; k++) {
        if (rd->facts[k].key == key) {
            rd->con[k] = 1;
        }
    }
}


/* category, founders, products, former names: anywhere in the answer */

static void
ngx_dr_ground_anywhere(ngx_dr_ground_read_t *rd)
{
    size_t                       i, k, a;
    const char                  *v;
    const ngx_dr_ground_fact_t  *f;

    for (k = 0; k < rd->n_facts; k++) {
        f = &rd->facts[k];

        if (f->key == NGX_DR_GROUND_FOUNDED
            || f->key == NGX_DR_GROUND_HEADQUARTERS)
        {
            continue;
        }

        for (a = 0; a <= f->n_aliases && !rd->sup[k]; a++) {
            v = (a == 0) ? f->value : f->aliases[a - 1];

            for (i = 0; i < rd->text->n; i++) {
                if (ngx_dr_ground_match(rd->text, i, rd->text->n, v)) {
                    rd->sup[k] = 1;
                    break;
                }
            }
        }
    }
}


/*
 * The tokens of phrase, when they follow one another from token "at" of
 * the text within one sentence and before token end; 0 otherwise.
 */

static size_t
ngx_dr_ground_match(const ngx_dr_ground_text_t *text, size_t at,
    size_t end, const char *phrase)
{
    size_t                  i;
    ngx_dr_ground_phrase_t  p;

    p.n = ngx_dr_ground_tokenize((const unsigned char *) phrase,
                                 strlen(phrase), p.tok,
                                 NGX_DR_GROUND_TOKENS_MAX);

    /* only the first tokens were kept: a longer phrase is no value */
    if (p.n == 0 || p.n > NGX_DR_GROUND_TOKENS_MAX
        || at + p.n > end || at + p.n > text->n)
    {
        return 0;
    }

    for (i = 0; i < p.n; i++) {
        if ((i && text->tok[at + i].brk)
            || !ngx_dr_ground_tok_eq(&text->tok[at + i], &p.tok[i]))
        {
            return 0;
        }
    }

    return p.n;
}


/* the tokens of phrase, when they end right before token "at" */

static size_t
ngx_dr_ground_match_before(const ngx_dr_ground_text_t *text, size_t at,
    const char *phrase)
{
    size_t                  n;
    ngx_dr_ground_phrase_t  p;

    p.n = ngx_dr_ground_tokenize((const unsigned char *) phrase,
                                 strlen(phrase), p.tok,
                                 NGX_DR_GROUND_TOKENS_MAX);
    n = p.n;

    if (n == 0 || n > NGX_DR_GROUND_TOKENS_MAX || n > at) {
        return 0;
    }

    return ngx_dr_ground_match(text, at - n, at, phrase);
}


/* a year from 1800 to 2099 written as four digits, or -1 */

static int
ngx_dr_ground_year(const ngx_dr_ground_tok_t *t)
{
    int     year;
    size_t  i;

    if (t->len != 4) {
        return -1;
    }

    year = 0;

    for (i = 0; i < 4; i++) {
        if (t->data[i] < '0' || t->data[i] > '9') {
            return -1;
        }

        year = year * 10 + (t->data[i] - '0');
    }

    return (year >= 1800 && year <= 2099) ? year : -1;
}


/*
 * Tokens of p, at most max; a token's brk is set when a sentence ends in
 * the gap before it: ';', a line end, or '.', '!' or '?' before white
 * space ("U.S." is one sentence, "in 2010. It" two).
 */

static size_t
ngx_dr_ground_tokenize(const unsigned char *p, size_t len,
    ngx_dr_ground_tok_t *tok, size_t max)
{
    int                   brk;
    size_t                n, skip;
    const unsigned char  *end, *start;

    n = 0;
    brk = 0;
    end = p + len;

    while (p < end) {

        if (!ngx_dr_ground_is_word(p, end, &skip)) {
            if (*p == ';' || *p == '\n') {
                brk = 1;

            } else if ((*p == '.' || *p == '!' || *p == '?')
                       && p + 1 < end
                       && (p[1] == ' ' || p[1] == '\t' || p[1] == '\r'
                           || p[1] == '\n'))
            {
                brk = 1;
            }

            p += skip;
            continue;
        }

        start = p;

        while (p < end && ngx_dr_ground_is_word(p, end, &skip)) {
            p++;
        }

        if (n < max) {
            tok[n].data = start;
            tok[n].len = p - start;
            tok[n].brk = brk;
        }

        n++;
        brk = 0;
    }

    return n;
}


/* a byte of a word; otherwise how many bytes the separator takes */

static int
ngx_dr_ground_is_word(const unsigned char *p, const unsigned char *end,
    size_t *skip)
{
    *skip = 1;

    if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')
        || (*p >= 'A' && *p <= 'Z'))
    {
        return 1;
    }

    if (*p < 0x80) {
        return 0;
    }

    /* U+2018 and U+2019 split words as "'" does */
    if (*p == 0xe2 && end - p >= 3 && p[1] == 0x80
        && (p[2] == 0x98 || p[2] == 0x99))
    {
        *skip = 3;
        return 0;
    }

    return 1;
}


static int
ngx_dr_ground_tok_is(const ngx_dr_ground_tok_t *t, const char *word)
{
    ngx_dr_ground_tok_t  w;

    w.data = (const unsigned char *) word;
    w.len = strlen(word);

    return ngx_dr_ground_tok_eq(t, &w);
}


static int
ngx_dr_ground_tok_in(const ngx_dr_ground_tok_t *t, const char **words)
{
    size_t  i;

    for (i = 0; words[i]; i++) {
        if (ngx_dr_ground_tok_is(t, words[i])) {
            return 1;
        }
    }

    return 0;
}


static int
ngx_dr_ground_tok_eq(const ngx_dr_ground_tok_t *a,
    const ngx_dr_ground_tok_t *b)
{
    size_t         i;
    unsigned char  x, y;

    if (a->len != b->len) {
        return 0;
    }

    for (i = 0; i < a->len; i++) {
        x = a->data[i];
        y = b->data[i];

        if (x >= 'A' && x <= 'Z') {
            x |= 0x20;
        }

        if (y >= 'A' && y <= 'Z') {
            y |= 0x20;
        }

        if (x != y) {
            return 0;
        }
    }

    return 1;
}


/*
 * A domain's grounding in one run.  Of a model's valid answers: a fact is
 * contradicted when any of them contradicts it (a model that gives a
 * wrong year once is not to be trusted on it), else supported when any
 * supports it, else unmentioned.  The score is the share of what the
 * models stated that is true; the strength, how much of the facts they
 * stated at all.
 */

int
ngx_dr_ground_domain(const ngx_dr_ground_fact_t *facts, size_t n_facts,
    const ngx_dr_ground_answer_t *answers, size_t n_answers,
    ngx_dr_ground_result_t *res)
{
    int                             rc;
    size_t                          i, k, m, pairs;
    unsigned char                  *st, *flags;
    ngx_dr_ground_model_t          *gm;
    const ngx_dr_ground_answer_t  **order;

    if (res == NULL) {
        return NGX_DR_GROUND_EINVAL;
    }

    memset(res, 0, sizeof(ngx_dr_ground_result_t));

    if ((facts == NULL && n_facts) || (answers == NULL && n_answers)) {
        return NGX_DR_GROUND_EINVAL;
    }

    for (i = 0; i < n_answers; i++) {
        if (answers[i].model == NULL) {
            return NGX_DR_GROUND_EINVAL;
        }
    }

    order = malloc((n_answers + 1) * sizeof(ngx_dr_ground_answer_t *));
    res->facts = calloc(n_facts + 1, sizeof(ngx_dr_ground_count_t));
    res->models = calloc(n_answers + 1, sizeof(ngx_dr_ground_model_t));
    st = malloc(n_facts + 1);
    flags = calloc(n_answers + 1, 2 * n_facts + 1);

    if (order == NULL || res->facts == NULL || res->models == NULL
        || st == NULL || flags == NULL)
    {
        rc = NGX_DR_GROUND_ENOMEM;
        goto done;
    }

    for (i = 0; i < n_answers; i++) {
        order[i] = &answers[i];
    }

    qsort(order, n_answers, sizeof(ngx_dr_ground_answer_t *),
          ngx_dr_ground_model_cmp);

    /* flags: a model's supported facts, then its contradicted ones */

    m = 0;

    for (i = 0; i < n_answers; i++) {
        if (!order[i]->valid) {
            continue;
        }

        if (m == 0
            || strcmp(res->models[m - 1].model, order[i]->model) != 0)
        {
            res->models[m++].model = order[i]->model;
        }

        rc = ngx_dr_ground_answer(facts, n_facts, order[i]->text,
                                  order[i]->text_len, st);
        if (rc != NGX_DR_GROUND_OK) {
            goto done;
        }

        for (k = 0; k < n_facts; k++) {
            if (st[k] == NGX_DR_GROUND_SUPPORTED) {
                flags[(m - 1) * 2 * n_facts + k] = 1;

            } else if (st[k] == NGX_DR_GROUND_CONTRADICTED) {
                flags[(m - 1) * 2 * n_facts + n_facts + k] = 1;
            }
        }
    }

    res->n_models = m;

    for (i = 0; i < m; i++) {
        gm = &res->models[i];

        for (k = 0; k < n_facts; k++) {
            if (flags[i * 2 * n_facts + n_facts + k]) {
                gm->contradicted++;
                res->facts[k].contradicted++;

            } else if (flags[i * 2 * n_facts + k]) {
                gm->supported++;
                res->facts[k].supported++;

            } else {
                gm->unmentioned++;
                res->facts[k].unmentioned++;
            }
        }

        res->supported += gm->supported;
        res->contradicted += gm->contradicted;
        res->unmentioned += gm->unmentioned;
    }

    pairs = res->supported + res->contradicted + res->unmentioned;

    if (res->supported + res->contradicted) {
        res->has_score = 1;
        res->score = 100.0 * res->supported
                     / (res->supported + res->contradicted);
    }

    if (pairs) {
        res->strength = 100.0 * (res->supported + res->contradicted) / pairs;
    }

    rc = NGX_DR_GROUND_OK;

done:

    free(order);
    free(st);
    free(flags);

    if (rc != NGX_DR_GROUND_OK) {
        ngx_dr_ground_result_free(res);
    }

    return rc;
}


void
ngx_dr_ground_result_free(ngx_dr_ground_result_t *res)
{
    if (res == NULL) {
        return;
    }

    free(res->models);
    free(res->facts);
    memset(res, 0, sizeof(ngx_dr_ground_result_t));
}


static int
ngx_dr_ground_model_cmp(const void *a, const void *b)
{
    const ngx_dr_ground_answer_t  *x, *y;

    x = *(const ngx_dr_ground_answer_t *const *) a;
    y = *(const ngx_dr_ground_answer_t *const *) b;

    return strcmp(x->model, y->model);
}

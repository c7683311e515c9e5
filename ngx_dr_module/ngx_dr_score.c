
/*
 * Domain Runner: deterministic scoring of stored answers (SPEC section 8).
 *
 * Only libc and libm.  Results never depend on the order of the input:
 * answers are sorted by (prompt, model) before anything is summed, and
 * dot products of term vectors are exact integers.  The word lists are
 * static const and looked up by binary search.  The reasons behind every
 * number are in docs/scoring.md.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "ngx_dr_score.h"


/* tokens longer than this are in no word table: no need to look them up */
#define NGX_DR_SCORE_WORD_MAX    32

#define NGX_DR_SCORE_NELTS(a)    (sizeof(a) / sizeof((a)[0]))

/* is the counted word w in the static sorted table? */
#define ngx_dr_score_in(table, w, len)                                       \
    ngx_dr_score_lookup(table, NGX_DR_SCORE_NELTS(table), w, len)

#define ngx_dr_score_check(table, words)                                     \
    ngx_dr_score_check_table(table, NGX_DR_SCORE_NELTS(table), words)


typedef struct {
    uint64_t                      hash;
    const unsigned char          *data;     /* into the vector's buf */
    size_t                        len;
    size_t                        count;
} ngx_dr_score_term_t;


/*
 * A term-frequency vector: the distinct terms in order of first use and
 * an open-addressing table over them (slots hold index + 1, 0 is free).
 */

typedef struct {
    ngx_dr_score_term_t          *terms;
    size_t                        n;
    size_t                       *slots;    /* in the terms allocation */
    size_t                        mask;     /* slots - 1, a power of 2 */
    unsigned char                *buf;      /* lower-cased text */
    uint64_t                      norm2;    /* sum of count^2 */
    int                           built;
} ngx_dr_score_vec_t;


typedef struct {
    const ngx_dr_score_answer_t  *a;
    size_t                        index;    /* in the input array */
    size_t                        model;    /* index in out->models */
    ngx_dr_score_verdict_t        v;
    ngx_dr_score_vec_t            vec;
} ngx_dr_score_item_t;


static int ngx_dr_score_word_byte(const unsigned char *p, size_t len,
    size_t i, size_t *skip);
static int ngx_dr_score_next_token(const unsigned char *p, size_t len,
    size_t *pos, size_t *start, size_t *tlen);
static int ngx_dr_score_cmp_word(const unsigned char *w, size_t len,
    const char *s);
static int ngx_dr_score_lookup(const char *const *table, size_t n,
    const unsigned char *w, size_t len);
static int ngx_dr_score_check_table(const char *const *table, size_t n,
    int words);
static int ngx_dr_score_brand_len(const char *domain, char *buf,
    size_t size);
static int ngx_dr_score_mentions(const unsigned char *text, size_t len,
    const char *pat, size_t plen);
static size_t ngx_dr_score_match_phrase(const unsigned char *t, size_t len,
    const char *phrase);
static int ngx_dr_score_refusal(const unsigned char *t, size_t len);
static void ngx_dr_score_judge(const char *brand, size_t brand_len,
    int status, const char *text, size_t len, ngx_dr_score_verdict_t *v);
static size_t ngx_dr_score_vec_slot(const ngx_dr_score_vec_t *vec,
    uint64_t hash, const unsigned char *data, size_t len);
static int ngx_dr_score_vec_build(ngx_dr_score_vec_t *vec,
    const char *text, size_t len);
static void ngx_dr_score_vec_free(ngx_dr_score_vec_t *vec);
static double ngx_dr_score_cosine(const ngx_dr_score_vec_t *a,
    const ngx_dr_score_vec_t *b);
static int ngx_dr_score_cmp_prompt_model(const void *one, const void *two);
static int ngx_dr_score_cmp_model_prompt(const void *one, const void *two);
static int ngx_dr_score_items(const ngx_dr_score_answer_t *answers,
    size_t n, ngx_dr_score_item_t **items);
static int ngx_dr_score_models(ngx_dr_score_item_t *items, size_t n,
    ngx_dr_score_result_t *out);
static int ngx_dr_score_prompts(ngx_dr_score_item_t *items, size_t n,
    ngx_dr_score_result_t *out);
static int ngx_dr_score_drift_pairs(ngx_dr_score_item_t *cur, size_t ncur,
    ngx_dr_score_item_t *prev, size_t nprev, ngx_dr_score_result_t *out);


/*
 * Refusal and "I don't know this" openings, lower-case, with an ASCII
 * apostrophe that also matches the typographic ones (U+2018, U+2019).
 * Matched as whole words starting in the first
 * NGX_DR_SCORE_REFUSAL_WINDOW bytes.
 */
static const char *const  ngx_dr_score_refusals[] = {
    "as an ai language model",
    "as an ai, i",
    "i am not aware of",
    "i am not familiar with",
    "i am sorry, but i",
    "i am unable to provide",
    "i can't provide",
    "i cannot provide",
    "i could not find any information",
    "i couldn't find any information",
    "i do not have any information",
    "i do not have information",
    "i do not have specific information",
    "i do not know of",
    "i don't have any information",
    "i don't have information",
    "i don't have specific information",
    "i don't know of",
    "i have no information",
    "i'm not aware of",
    "i'm not familiar with",
    "i'm sorry, but i",
    "i'm unable to provide",
    "no information available",
    "not enough information"
};


/* English stop words, sorted (strcmp order) for binary search */
static const char *const  ngx_dr_score_stop_words[] = {
    "a", "about", "above", "after", "again", "against", "all", "also", "am",
    "an", "and", "any", "are", "as", "at", "be", "because", "been",
    "before", "being", "below", "between", "both", "but", "by", "can",
    "could", "d", "did", "do", "does", "doing", "don", "down", "during",
    "each", "few", "for", "from", "further", "had", "has", "have", "having",
    "he", "her", "here", "hers", "herself", "him", "himself", "his", "how",
    "i", "if", "in", "into", "is", "isn", "it", "its", "itself", "just",
    "ll", "m", "me", "more", "most", "my", "myself", "no", "nor", "not",
    "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours",
    "out", "over", "own", "re", "s", "same", "she", "should", "so", "some",
    "such", "t", "than", "that", "the", "their", "theirs", "them",
    "themselves", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "until", "up", "ve", "very", "was",
    "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your", "yours"
};


/* sentiment lexicon, sorted (strcmp order) */
static const char *const  ngx_dr_score_positive[] = {
    "acclaimed", "admired", "advanced", "affordable", "award", "awarded",
    "awards", "beloved", "best", "effective", "efficient", "excellent",
    "exceptional", "favorite", "favourite", "growing", "growth", "iconic",
    "impressive", "influential", "innovation", "innovative", "innovator",
    "leader", "leading", "loved", "outstanding", "pioneer", "pioneering",
    "popular", "positive", "powerful", "praised", "premier", "premium",
    "profitable", "prominent", "reliable", "renowned", "reputable",
    "respected", "robust", "seamless", "secure", "strong", "success",
    "successful", "superior", "thriving", "trusted", "trustworthy",
    "valuable"
};


static const char *const  ngx_dr_score_negative[] = {
    "abandoned", "bad", "bankrupt", "bankruptcy", "breach", "breaches",
    "complaints", "controversial", "controversy", "criticised", "criticism",
    "criticized", "dangerous", "deceptive", "decline", "declining",
    "defunct", "disappointing", "fail", "failed", "failing", "failure",
    "fined", "fines", "fraud", "fraudulent", "hacked", "illegal",
    "insecure", "lawsuit", "lawsuits", "losses", "malware", "misleading",
    "negative", "outage", "outages", "poor", "problematic", "risky", "scam",
    "scandal", "slow", "spam", "struggling", "unreliable", "unsafe",
    "vulnerabilities", "vulnerable", "weak", "worst"
};


/* a negator directly before a lexicon word flips its polarity */
static const char *const  ngx_dr_score_negators[] = {
    "never", "no", "not"
};


/* public suffixes of two labels; any other suffix is one label */
static const char *const  ngx_dr_score_suffixes[] = {
    "ac.jp", "ac.uk", "co.id", "co.il", "co.in", "co.jp", "co.kr", "co.nz",
    "co.th", "co.uk", "co.za", "com.ar", "com.au", "com.br", "com.cn",
    "com.hk", "com.mx", "com.my", "com.sg", "com.tr", "com.tw", "gov.uk",
    "ne.jp", "net.au", "or.jp", "org.au", "org.uk"
};


static const char *const  ngx_dr_score_class_names[] = {
    "negative", "neutral", "positive", "none"
};

static const char *const  ngx_dr_score_drift_names[] = {
    "stable", "drifting", "decayed"
};

static const char *const  ngx_dr_score_risk_names[] = {
    "low", "medium", "high", "critical"
};


static unsigned char
ngx_dr_score_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}


static int
ngx_dr_score_ascii_alnum(unsigned char c)
{
    c = ngx_dr_score_lower(c);

    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}


static int
ngx_dr_score_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
           || c == '\v';
}


/* U+2018 and U+2019, the typographic apostrophes, 3 bytes in UTF-8 */
static int
ngx_dr_score_curly_quote(const unsigned char *p, size_t len, size_t i)
{
    return i + 2 < len && p[i] == 0xe2 && p[i + 1] == 0x80
           && (p[i + 2] == 0x98 || p[i + 2] == 0x99);
}


/*
 * Is p[i] part of a word?  ASCII letters and digits are, and so are bytes
 * >= 0x80 so that UTF-8 words survive, except the typographic apostrophes:
 * models write "Stripe’s" as often as "Stripe's" and both must split the
 * same way.  *skip is the length of the character at p[i].
 */

static int
ngx_dr_score_word_byte(const unsigned char *p, size_t len, size_t i,
    size_t *skip)
{
    unsigned char  c;

    *skip = 1;
    c = p[i];

    if (c < 0x80) {
        return (unsigned char) ((c | 0x20) - 'a') < 26
               || (unsigned char) (c - '0') < 10;
    }

    if (c == 0xe2 && ngx_dr_score_curly_quote(p, len, i)) {
        *skip = 3;
        return 0;
    }

    return 1;
}


static int
ngx_dr_score_next_token(const unsigned char *p, size_t len, size_t *pos,
    size_t *start, size_t *tlen)
{
    size_t  i, skip;

    i = *pos;

    while (i < len && !ngx_dr_score_word_byte(p, len, i, &skip)) {
        i += skip;
    }

    if (i == len) {
        *pos = len;
        return 0;
    }

    *start = i;

    while (i < len && ngx_dr_score_word_byte(p, len, i, &skip)) {
        i++;
    }

    *tlen = i - *start;
    *pos = i;

    return 1;
}


/*
 * strcmp() order between a counted word and a C string, without strlen()
 * or memcmp() calls: this runs for every token several times over.
 * Tokens hold no NUL byte.
 */

static int
ngx_dr_score_cmp_word(const unsigned char *w, size_t len, const char *s)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (w[i] != c) {
            return (c == '\0' || w[i] > c) ? 1 : -1;
        }
    }

    return s[len] == '\0' ? 0 : -1;
}


static int
ngx_dr_score_lookup(const char *const *table, size_t n,
    const unsigned char *w, size_t len)
{
    int     rc;
    size_t  lo, hi, mid;

    lo = 0;
    hi = n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        rc = ngx_dr_score_cmp_word(w, len, table[mid]);

        if (rc == 0) {
            return 1;
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return 0;
}


/*
 * Sorted and unique, or binary search misses words; and for word tables
 * only what a token can hold: a word with an upper-case letter, a hyphen
 * or a space would never match.
 */

static int
ngx_dr_score_check_table(const char *const *table, size_t n, int words)
{
    size_t       i;
    const char  *c;

    for (i = 0; i < n; i++) {
        if (i > 0 && strcmp(table[i - 1], table[i]) >= 0) {
            return -1;
        }

        for (c = table[i]; words && *c != '\0'; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))) {
                return -1;
            }
        }
    }

    return 0;
}


int
ngx_dr_score_tables_check(void)
{
    size_t                i, n;
    const unsigned char  *w;

    if (ngx_dr_score_check(ngx_dr_score_stop_words, 1) != 0
        || ngx_dr_score_check(ngx_dr_score_positive, 1) != 0
        || ngx_dr_score_check(ngx_dr_score_negative, 1) != 0
        || ngx_dr_score_check(ngx_dr_score_negators, 1) != 0
        || ngx_dr_score_check(ngx_dr_score_suffixes, 0) != 0)
    {
        return -1;
    }

    /* a word in both lists would silently count as positive only */

    for (i = 0; i < NGX_DR_SCORE_NELTS(ngx_dr_score_positive); i++) {
        w = (const unsigned char *) ngx_dr_score_positive[i];
        n = strlen(ngx_dr_score_positive[i]);

        if (ngx_dr_score_in(ngx_dr_score_negative, w, n)) {
            return -1;
        }
    }

    return 0;
}


int
ngx_dr_score_brand(const char *domain, char *buf, size_t size)
{
    int  n;

    n = ngx_dr_score_brand_len(domain, buf, size);

    if (n >= 0) {
        buf[n] = '\0';
    }

    return n;
}


static int
ngx_dr_score_brand_len(const char *domain, char *buf, size_t size)
{
    char        two[2 * NGX_DR_SCORE_BRAND_LEN];
    size_t      len, i, nlabels, start[3], end[3], bs, bl, k;
    const char  *d;

    if (domain == NULL || buf == NULL) {
        return -1;
    }

    d = domain;
    len = strlen(d);

    /* "stripe.com." is the same name as "stripe.com" */

    if (len > 0 && d[len - 1] == '.') {
        len--;
    }

    if (len == 0 || d[0] == '.') {
        return -1;
    }

    /* the last three labels, right to left: [0] is the top-level one */

    nlabels = 0;
    i = len;

    while (i > 0) {
        k = i;

        while (i > 0 && d[i - 1] != '.') {
            i--;
        }

        if (i == k) {
            return -1;                              /* an empty label */
        }

        if (nlabels < 3) {
            start[nlabels] = i;
            end[nlabels] = k;
        }

        nlabels++;

        if (i > 0) {
            i--;                                    /* the dot */
        }
    }

    if (nlabels == 1) {
        bs = start[0];
        bl = end[0] - start[0];

    } else {
        bs = start[1];
        bl = end[1] - start[1];

        if (nlabels >= 3 && end[0] - start[1] < sizeof(two)) {
            for (k = 0; k < end[0] - start[1]; k++) {
                two[k] = (char) ngx_dr_score_lower(
                             (unsigned char) d[start[1] + k]);
            }

            if (ngx_dr_score_in(ngx_dr_score_suffixes,
                                (const unsigned char *) two, k))
            {
                bs = start[2];
                bl = end[2] - start[2];
            }
        }
    }

    if (bl + 1 > size || bl + 1 > NGX_DR_SCORE_BRAND_LEN) {
        return -1;
    }

    for (k = 0; k < bl; k++) {
        buf[k] = (char) ngx_dr_score_lower((unsigned char) d[bs + k]);
    }

    return (int) bl;
}


/*
 * Does the text name the brand as a whole word, case-insensitively?  A
 * hyphen of the brand also matches a space ("coca-cola" and "coca cola").
 * Word boundaries here are anything but an ASCII letter or digit: domain
 * labels are ASCII, and "Stripe’s" or "Stripeの" still name Stripe.
 * The domain itself needs no search of its own: the brand is one of its
 * labels, so any whole-word mention of the domain contains one of the
 * brand.
 */

static int
ngx_dr_score_mentions(const unsigned char *text, size_t len,
    const char *pat, size_t plen)
{
    size_t         i, k;
    unsigned char  c, p;

    if (plen == 0 || plen > len) {
        return 0;
    }

    for (i = 0; i + plen <= len; i++) {

        if (i > 0 && ngx_dr_score_ascii_alnum(text[i - 1])) {
            continue;
        }

        for (k = 0; k < plen; k++) {
            c = ngx_dr_score_lower(text[i + k]);
            p = (unsigned char) pat[k];

            if (c != p && !(p == '-' && c == ' ')) {
                break;
            }
        }

        if (k < plen) {
            continue;
        }

        if (i + plen == len || !ngx_dr_score_ascii_alnum(text[i + plen])) {
            return 1;
        }
    }

    return 0;
}


/* the bytes of t matched by the phrase, or 0 */
static size_t
ngx_dr_score_match_phrase(const unsigned char *t, size_t len,
    const char *phrase)
{
    size_t  i, k;

    i = 0;

    for (k = 0; phrase[k] != '\0'; k++) {
        if (i == len) {
            return 0;
        }

        if (phrase[k] == '\'' && ngx_dr_score_curly_quote(t, len, i)) {
            i += 3;
            continue;
        }

        if (ngx_dr_score_lower(t[i]) != (unsigned char) phrase[k]) {
            return 0;
        }

        i++;
    }

    return i;
}


/*
 * A refusal phrase counts only when it starts within the first
 * NGX_DR_SCORE_REFUSAL_WINDOW bytes: refusals open with it, while a
 * real answer may hedge about one detail further down.
 */

static int
ngx_dr_score_refusal(const unsigned char *t, size_t len)
{
    size_t  i, j, m, window;

    window = len < NGX_DR_SCORE_REFUSAL_WINDOW
             ? len : NGX_DR_SCORE_REFUSAL_WINDOW;

    for (i = 0; i < window; i++) {

        if (i > 0 && ngx_dr_score_ascii_alnum(t[i - 1])) {
            continue;
        }

        for (j = 0; j < NGX_DR_SCORE_NELTS(ngx_dr_score_refusals); j++) {
            m = ngx_dr_score_match_phrase(t + i, len - i,
                                          ngx_dr_score_refusals[j]);

            if (m > 0
                && (i + m == len || !ngx_dr_score_ascii_alnum(t[i + m])))
            {
                return 1;
            }
        }
    }

    return 0;
}


double
ngx_dr_score_sentiment(const char *text, size_t len)
{
    int                   polarity, negate;
    size_t                pos, start, tlen, k, npos, nneg;
    unsigned char         w[NGX_DR_SCORE_WORD_MAX];
    const unsigned char  *p;

    if (text == NULL) {
        return 0.0;
    }

    p = (const unsigned char *) text;
    pos = 0;
    npos = 0;
    nneg = 0;
    negate = 0;

    while (ngx_dr_score_next_token(p, len, &pos, &start, &tlen)) {

        if (tlen > NGX_DR_SCORE_WORD_MAX) {
            negate = 0;
            continue;
        }

        for (k = 0; k < tlen; k++) {
            w[k] = ngx_dr_score_lower(p[start + k]);
        }

        polarity = 0;

        if (ngx_dr_score_in(ngx_dr_score_positive, w, tlen)) {
            polarity = 1;

        } else if (ngx_dr_score_in(ngx_dr_score_negative, w, tlen)) {
            polarity = -1;
        }

        if (negate) {
            polarity = -polarity;
        }

        if (polarity > 0) {
            npos++;

        } else if (polarity < 0) {
            nneg++;
        }

        negate = ngx_dr_score_in(ngx_dr_score_negators, w, tlen);
    }

    if (npos + nneg == 0) {
        return 0.0;
    }

    return ((double) npos - (double) nneg) / (double) (npos + nneg);
}


static void
ngx_dr_score_judge(const char *brand, size_t brand_len, int status,
    const char *text, size_t len, ngx_dr_score_verdict_t *v)
{
    size_t                b, e, i, chars;
    const unsigned char  *p;

    v->valid = 0;
    v->recognized = 0;
    v->sentiment = ngx_dr_score_sentiment(text, len);

    if (status != 200) {
        v->reason = NGX_DR_SCORE_BAD_STATUS;
        return;
    }

    p = (const unsigned char *) text;
    b = 0;
    e = (text == NULL) ? 0 : len;

    while (b < e && ngx_dr_score_space(p[b])) {
        b++;
    }

    while (e > b && ngx_dr_score_space(p[e - 1])) {
        e--;
    }

    /* characters, not bytes: an answer in Japanese is not 3 times longer */

    chars = 0;

    for (i = b; i < e; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            chars++;
        }
    }

    if (chars < NGX_DR_SCORE_MIN_CHARS) {
        v->reason = NGX_DR_SCORE_TOO_SHORT;
        return;
    }

    if (ngx_dr_score_refusal(p + b, e - b)) {
        v->reason = NGX_DR_SCORE_REFUSAL;
        return;
    }

    v->valid = 1;
    v->reason = NGX_DR_SCORE_VALID;
    v->recognized = ngx_dr_score_mentions(p + b, e - b, brand, brand_len);
}


int
ngx_dr_score_answer(const char *domain, int http_status, const char *text,
    size_t len, ngx_dr_score_verdict_t *v)
{
    int   n;
    char  brand[NGX_DR_SCORE_BRAND_LEN];

    if (v == NULL || (text == NULL && len > 0)) {
        return NGX_DR_SCORE_EINVAL;
    }

    n = ngx_dr_score_brand_len(domain, brand, sizeof(brand));
    if (n < 0) {
        return NGX_DR_SCORE_EINVAL;
    }

    ngx_dr_score_judge(brand, (size_t) n, http_status, text, len, v);

    return NGX_DR_SCORE_OK;
}


/* the slot holding the term, or the free slot where it would go */
static size_t
ngx_dr_score_vec_slot(const ngx_dr_score_vec_t *vec, uint64_t hash,
    const unsigned char *data, size_t len)
{
    size_t                      i, k;
    const ngx_dr_score_term_t  *t;

    i = (size_t) hash & vec->mask;

    for ( ;; ) {
        k = vec->slots[i];

        if (k == 0) {
            return i;
        }

        t = &vec->terms[k - 1];

        if (t->hash == hash && t->len == len
            && memcmp(t->data, data, len) == 0)
        {
            return i;
        }

        i = (i + 1) & vec->mask;
    }
}


static int
ngx_dr_score_vec_build(ngx_dr_score_vec_t *vec, const char *text,
    size_t len)
{
    size_t                i, n, cap, pos, start, tlen, slot;
    uint64_t              h;
    unsigned char        *buf;
    ngx_dr_score_term_t  *t;

    memset(vec, 0, sizeof(ngx_dr_score_vec_t));
    vec->built = 1;

    if (text == NULL || len == 0) {
        return NGX_DR_SCORE_OK;
    }

    buf = malloc(len);
    if (buf == NULL) {
        return NGX_DR_SCORE_ENOMEM;
    }

    for (i = 0; i < len; i++) {
        buf[i] = ngx_dr_score_lower((unsigned char) text[i]);
    }

    /* count first: arrays sized by bytes would be 20 times the text */

    n = 0;
    pos = 0;

    while (ngx_dr_score_next_token(buf, len, &pos, &start, &tlen)) {
        n++;
    }

    if (n == 0) {
        free(buf);
        return NGX_DR_SCORE_OK;
    }

    if (n > SIZE_MAX / 4 / sizeof(ngx_dr_score_term_t)) {
        free(buf);
        return NGX_DR_SCORE_ENOMEM;
    }

    /* at most half full, so a probe always meets a free slot soon */

    for (cap = 4; cap < 2 * n; cap *= 2) { /* void */ }

    t = malloc(n * sizeof(ngx_dr_score_term_t) + cap * sizeof(size_t));
    if (t == NULL) {
        free(buf);
        return NGX_DR_SCORE_ENOMEM;
    }

    vec->terms = t;
    vec->slots = (size_t *) (t + n);
    vec->mask = cap - 1;
    vec->buf = buf;

    memset(vec->slots, 0, cap * sizeof(size_t));

    pos = 0;

    while (ngx_dr_score_next_token(buf, len, &pos, &start, &tlen)) {
        if (tlen <= NGX_DR_SCORE_WORD_MAX
            && ngx_dr_score_in(ngx_dr_score_stop_words, buf + start, tlen))
        {
            continue;
        }

        /* FNV-1a */

        h = 0xcbf29ce484222325ULL;

        for (i = 0; i < tlen; i++) {
            h ^= buf[start + i];
            h *= 0x100000001b3ULL;
        }

        slot = ngx_dr_score_vec_slot(vec, h, buf + start, tlen);

        if (vec->slots[slot] != 0) {
            t[vec->slots[slot] - 1].count++;
            continue;
        }

        t[vec->n].hash = h;
        t[vec->n].data = buf + start;
        t[vec->n].len = tlen;
        t[vec->n].count = 1;
        vec->slots[slot] = ++vec->n;
    }

    for (i = 0; i < vec->n; i++) {
        vec->norm2 += (uint64_t) t[i].count * t[i].count;
    }

    return NGX_DR_SCORE_OK;
}


static void
ngx_dr_score_vec_free(ngx_dr_score_vec_t *vec)
{
    free(vec->terms);
    free(vec->buf);

    memset(vec, 0, sizeof(ngx_dr_score_vec_t));
}


/*
 * The dot product and both squared norms are exact integers, so the order
 * terms are visited in cannot matter, and sqrt(|a|^2 |b|^2) is one
 * correctly rounded operation: identical texts give exactly 1.0 and
 * sim(a, b) == sim(b, a) bit for bit.
 */

static double
ngx_dr_score_cosine(const ngx_dr_score_vec_t *a, const ngx_dr_score_vec_t *b)
{
    double                      sim;
    size_t                      i, k;
    uint64_t                    dot;
    const ngx_dr_score_term_t  *t;
    const ngx_dr_score_vec_t   *small, *big;

    if (a->n == 0 || b->n == 0) {
        return 0.0;
    }

    small = a->n <= b->n ? a : b;
    big = a->n <= b->n ? b : a;
    dot = 0;

    for (i = 0; i < small->n; i++) {
        t = &small->terms[i];
        k = big->slots[ngx_dr_score_vec_slot(big, t->hash, t->data, t->len)];

        if (k != 0) {
            dot += (uint64_t) t->count * big->terms[k - 1].count;
        }
    }

    if (dot == 0) {
        return 0.0;
    }

    sim = (double) dot / sqrt((double) a->norm2 * (double) b->norm2);

    return sim > 1.0 ? 1.0 : sim;
}


int
ngx_dr_score_similarity(const char *a, size_t a_len, const char *b,
    size_t b_len, double *sim)
{
    int                 rc;
    ngx_dr_score_vec_t  va, vb;

    if (sim == NULL || (a == NULL && a_len > 0) || (b == NULL && b_len > 0))
    {
        return NGX_DR_SCORE_EINVAL;
    }

    *sim = 0.0;

    rc = ngx_dr_score_vec_build(&va, a, a_len);
    if (rc != NGX_DR_SCORE_OK) {
        return rc;
    }

    rc = ngx_dr_score_vec_build(&vb, b, b_len);
    if (rc != NGX_DR_SCORE_OK) {
        ngx_dr_score_vec_free(&va);
        return rc;
    }

    *sim = ngx_dr_score_cosine(&va, &vb);

    ngx_dr_score_vec_free(&va);
    ngx_dr_score_vec_free(&vb);

    return NGX_DR_SCORE_OK;
}


static int
ngx_dr_score_cmp_prompt_model(const void *one, const void *two)
{
    int                         rc;
    const ngx_dr_score_item_t  *a, *b;

    a = one;
    b = two;

    rc = strcmp(a->a->prompt, b->a->prompt);
    if (rc != 0) {
        return rc;
    }

    return strcmp(a->a->model, b->a->model);
}


static int
ngx_dr_score_cmp_model_prompt(const void *one, const void *two)
{
    int                         rc;
    const ngx_dr_score_item_t  *a, *b;

    a = *(const ngx_dr_score_item_t *const *) one;
    b = *(const ngx_dr_score_item_t *const *) two;

    rc = strcmp(a->a->model, b->a->model);
    if (rc != 0) {
        return rc;
    }

    return strcmp(a->a->prompt, b->a->prompt);
}


/*
 * The answers as items sorted by (prompt, model), the canonical order
 * every sum below follows.  A (model, prompt) twice is refused: the
 * responses table cannot hold it, and no order-free choice between the
 * two exists.
 */

static int
ngx_dr_score_items(const ngx_dr_score_answer_t *answers, size_t n,
    ngx_dr_score_item_t **items)
{
    size_t                        i;
    ngx_dr_score_item_t          *it;
    const ngx_dr_score_answer_t  *a;

    *items = NULL;

    if (n == 0) {
        return NGX_DR_SCORE_OK;
    }

    if (answers == NULL) {
        return NGX_DR_SCORE_EINVAL;
    }

    for (i = 0; i < n; i++) {
        a = &answers[i];

        if (a->model == NULL || a->prompt == NULL
            || (a->text == NULL && a->text_len > 0))
        {
            return NGX_DR_SCORE_EINVAL;
        }
    }

    it = calloc(n, sizeof(ngx_dr_score_item_t));
    if (it == NULL) {
        return NGX_DR_SCORE_ENOMEM;
    }

    for (i = 0; i < n; i++) {
        it[i].a = &answers[i];
        it[i].index = i;
    }

    qsort(it, n, sizeof(ngx_dr_score_item_t), ngx_dr_score_cmp_prompt_model);

    for (i = 1; i < n; i++) {
        if (ngx_dr_score_cmp_prompt_model(&it[i - 1], &it[i]) == 0) {
            free(it);
            return NGX_DR_SCORE_EINVAL;
        }
    }

    *items = it;

    return NGX_DR_SCORE_OK;
}


static int
ngx_dr_score_models(ngx_dr_score_item_t *items, size_t n,
    ngx_dr_score_result_t *out)
{
    size_t                 i, m;
    ngx_dr_score_item_t  **by;
    ngx_dr_score_model_t  *model;

    if (n == 0) {
        return NGX_DR_SCORE_OK;
    }

    by = malloc(n * sizeof(ngx_dr_score_item_t *));
    if (by == NULL) {
        return NGX_DR_SCORE_ENOMEM;
    }

    for (i = 0; i < n; i++) {
        by[i] = &items[i];
    }

    qsort(by, n, sizeof(ngx_dr_score_item_t *),
          ngx_dr_score_cmp_model_prompt);

    m = 1;

    for (i = 1; i < n; i++) {
        if (strcmp(by[i - 1]->a->model, by[i]->a->model) != 0) {
            m++;
        }
    }

    out->models = calloc(m, sizeof(ngx_dr_score_model_t));
    if (out->models == NULL) {
        free(by);
        return NGX_DR_SCORE_ENOMEM;
    }

    out->n_models = m;
    m = 0;

    for (i = 0; i < n; i++) {
        if (i > 0 && strcmp(by[i - 1]->a->model, by[i]->a->model) != 0) {
            m++;
        }

        model = &out->models[m];
        model->model = by[i]->a->model;
        by[i]->model = m;

        model->answers++;

        if (by[i]->v.valid) {
            model->valid++;
            model->sentiment += by[i]->v.sentiment;
        }

        if (by[i]->v.recognized) {
            model->recognized++;
        }
    }

    free(by);

    for (m = 0; m < out->n_models; m++) {
        model = &out->models[m];

        if (model->valid == 0) {
            model->sentiment_class = NGX_DR_SCORE_UNCLASSIFIED;
            continue;
        }

        model->sentiment /= (double) model->valid;
        model->sentiment_class = ngx_dr_score_class(model->sentiment);

        switch (model->sentiment_class) {

        case NGX_DR_SCORE_POSITIVE:
            out->models_positive++;
            break;

        case NGX_DR_SCORE_NEGATIVE:
            out->models_negative++;
            break;

        default:
            out->models_neutral++;
            break;
        }
    }

    for (m = 0; m < out->n_models; m++) {
        if (out->models[m].recognized > 0) {
            out->recognizing_models++;
        }
    }

    return NGX_DR_SCORE_OK;
}


/* consensus, per-model agreement and cohesion, prompt by prompt */
static int
ngx_dr_score_prompts(ngx_dr_score_item_t *items, size_t n,
    ngx_dr_score_result_t *out)
{
    int                    rc;
    double                 sim, sum, cons_sum, coh_sum;
    size_t                 g, e, i, j, pairs, valid, cls[3], best;
    ngx_dr_score_model_t  *mi, *mj;

    cons_sum = 0.0;
    coh_sum = 0.0;

    for (g = 0; g < n; g = e) {

        for (e = g + 1; e < n; e++) {
            if (strcmp(items[g].a->prompt, items[e].a->prompt) != 0) {
                break;
            }
        }

        valid = 0;
        cls[0] = 0;
        cls[1] = 0;
        cls[2] = 0;

        for (i = g; i < e; i++) {
            if (!items[i].v.valid) {
                continue;
            }

            valid++;
            cls[ngx_dr_score_class(items[i].v.sentiment) + 1]++;

            rc = ngx_dr_score_vec_build(&items[i].vec, items[i].a->text,
                                        items[i].a->text_len);
            if (rc != NGX_DR_SCORE_OK) {
                return rc;
            }
        }

        if (valid == 0) {
            continue;
        }

        best = cls[0] > cls[1] ? cls[0] : cls[1];
        best = best > cls[2] ? best : cls[2];

        coh_sum += (double) best / (double) valid;
        out->cohesion_prompts++;

        if (valid < 2) {
            continue;
        }

        /* (model, prompt) is unique, so two items are two models */

        sum = 0.0;
        pairs = 0;

        for (i = g; i < e; i++) {
            if (!items[i].v.valid) {
                continue;
            }

            for (j = i + 1; j < e; j++) {
                if (!items[j].v.valid) {
                    continue;
                }

                sim = ngx_dr_score_cosine(&items[i].vec, &items[j].vec);

                sum += sim;
                pairs++;

                mi = &out->models[items[i].model];
                mj = &out->models[items[j].model];
                mi->agreement += sim;
                mi->agreement_pairs++;
                mj->agreement += sim;
                mj->agreement_pairs++;
            }
        }

        cons_sum += sum / (double) pairs;
        out->consensus_prompts++;
    }

    if (out->consensus_prompts > 0) {
        out->ai_consensus = 100.0 * cons_sum
                            / (double) out->consensus_prompts;
    }

    if (out->cohesion_prompts > 0) {
        out->cohesion = 100.0 * coh_sum / (double) out->cohesion_prompts;
    }

    for (i = 0; i < out->n_models; i++) {
        mi = &out->models[i];

        if (mi->agreement_pairs > 0) {
            mi->agreement /= (double) mi->agreement_pairs;
        }
    }

    return NGX_DR_SCORE_OK;
}


/*
 * Drift pairs: the same (model, prompt) answered with HTTP 200 in both
 * runs.  A refusal does count, since a model that used to know the brand
 * and now refuses has forgotten it; a provider error is no answer at all.
 */

static int
ngx_dr_score_drift_pairs(ngx_dr_score_item_t *cur, size_t ncur,
    ngx_dr_score_item_t *prev, size_t nprev, ngx_dr_score_result_t *out)
{
    int                    rc;
    double                 d, sum;
    size_t                 i, j;
    ngx_dr_score_drift_t  *p;

    if (ncur == 0 || nprev == 0) {
        return NGX_DR_SCORE_OK;
    }

    out->drift = malloc((ncur < nprev ? ncur : nprev)
                        * sizeof(ngx_dr_score_drift_t));
    if (out->drift == NULL) {
        return NGX_DR_SCORE_ENOMEM;
    }

    sum = 0.0;
    i = 0;
    j = 0;

    while (i < ncur && j < nprev) {
        rc = ngx_dr_score_cmp_prompt_model(&cur[i], &prev[j]);

        if (rc < 0) {
            i++;
            continue;
        }

        if (rc > 0) {
            j++;
            continue;
        }

        if (cur[i].a->http_status == 200 && prev[j].a->http_status == 200) {

            if (!cur[i].vec.built) {
                rc = ngx_dr_score_vec_build(&cur[i].vec, cur[i].a->text,
                                            cur[i].a->text_len);
                if (rc != NGX_DR_SCORE_OK) {
                    return rc;
                }
            }

            rc = ngx_dr_score_vec_build(&prev[j].vec, prev[j].a->text,
                                        prev[j].a->text_len);
            if (rc != NGX_DR_SCORE_OK) {
                return rc;
            }

            d = 1.0 - ngx_dr_score_cosine(&cur[i].vec, &prev[j].vec);

            p = &out->drift[out->n_drift++];
            p->model = cur[i].a->model;
            p->prompt = cur[i].a->prompt;
            p->drift = d;
            p->status = ngx_dr_score_drift_status(d);

            switch (p->status) {

            case NGX_DR_SCORE_STABLE:
                out->stable++;
                break;

            case NGX_DR_SCORE_DRIFTING:
                out->drifting++;
                break;

            default:
                out->decayed++;
                break;
            }

            sum += d;
        }

        i++;
        j++;
    }

    if (out->n_drift > 0) {
        out->has_previous = 1;
        out->drift_score = sum / (double) out->n_drift;
    }

    return NGX_DR_SCORE_OK;
}


int
ngx_dr_score_domain(const ngx_dr_score_input_t *in,
    ngx_dr_score_result_t *out)
{
    int                   rc, blen;
    char                  brand[NGX_DR_SCORE_BRAND_LEN];
    double                window[NGX_DR_SCORE_HISTORY];
    size_t                i, nwin;
    ngx_dr_score_item_t  *cur, *prev;

    if (out == NULL) {
        return NGX_DR_SCORE_EINVAL;
    }

    memset(out, 0, sizeof(ngx_dr_score_result_t));

    if (in == NULL || (in->history == NULL && in->n_history > 0)) {
        return NGX_DR_SCORE_EINVAL;
    }

    for (i = 0; i < in->n_history; i++) {
        if (!isfinite(in->history[i])) {
            return NGX_DR_SCORE_EINVAL;
        }
    }

    blen = ngx_dr_score_brand_len(in->domain, brand, sizeof(brand));
    if (blen < 0) {
        return NGX_DR_SCORE_EINVAL;
    }

    cur = NULL;
    prev = NULL;

    rc = ngx_dr_score_items(in->answers, in->n_answers, &cur);
    if (rc != NGX_DR_SCORE_OK) {
        goto done;
    }

    rc = ngx_dr_score_items(in->previous, in->n_previous, &prev);
    if (rc != NGX_DR_SCORE_OK) {
        goto done;
    }

    if (in->n_answers > 0) {
        out->verdicts = malloc(in->n_answers
                               * sizeof(ngx_dr_score_verdict_t));
        if (out->verdicts == NULL) {
            rc = NGX_DR_SCORE_ENOMEM;
            goto done;
        }

        out->n_verdicts = in->n_answers;
    }

    for (i = 0; i < in->n_answers; i++) {
        ngx_dr_score_judge(brand, (size_t) blen, cur[i].a->http_status,
                           cur[i].a->text, cur[i].a->text_len, &cur[i].v);

        out->verdicts[cur[i].index] = cur[i].v;

        if (cur[i].v.valid) {
            out->valid++;
        }

        if (cur[i].v.recognized) {
            out->recognized++;
        }
    }

    rc = ngx_dr_score_models(cur, in->n_answers, out);
    if (rc != NGX_DR_SCORE_OK) {
        goto done;
    }

    rc = ngx_dr_score_prompts(cur, in->n_answers, out);
    if (rc != NGX_DR_SCORE_OK) {
        goto done;
    }

    rc = ngx_dr_score_drift_pairs(cur, in->n_answers, prev, in->n_previous,
                                  out);
    if (rc != NGX_DR_SCORE_OK) {
        goto done;
    }

    /* more answers than expected must not push the score past 100 */

    if (in->expected > 0) {
        out->memory_score = 100.0 * (double) out->recognized
                            / (double) in->expected;

        if (out->memory_score > 100.0) {
            out->memory_score = 100.0;
        }
    }

    out->drift_status = ngx_dr_score_drift_status(out->drift_score);

    if (in->n_history > 0) {
        out->has_trend = 1;
        out->trend = out->memory_score - in->history[0];
    }

    window[0] = out->memory_score;
    nwin = 1;

    for (i = 0; i < in->n_history && nwin < NGX_DR_SCORE_HISTORY; i++) {
        window[nwin++] = in->history[i];
    }

    out->volatility = ngx_dr_score_volatility(window, nwin);

    out->score = 0.7 * out->memory_score
                 + 0.3 * (100.0 * (1.0 - out->drift_score));

    if (out->ai_consensus < 40.0) {
        out->risk += 40;
        out->alerts |= NGX_DR_SCORE_ALERT_LOW_CONSENSUS;
    }

    if (out->has_trend && out->trend < -3.0) {
        out->risk += 35;
        out->alerts |= NGX_DR_SCORE_ALERT_DECLINING_MEMORY;
    }

    if (2 * out->recognizing_models < out->n_models) {
        out->risk += 25;
        out->alerts |= NGX_DR_SCORE_ALERT_LOW_RECOGNITION;
    }

    out->risk_level = ngx_dr_score_risk_level(out->risk);

    rc = NGX_DR_SCORE_OK;

done:

    for (i = 0; cur != NULL && i < in->n_answers; i++) {
        ngx_dr_score_vec_free(&cur[i].vec);
    }

    for (i = 0; prev != NULL && i < in->n_previous; i++) {
        ngx_dr_score_vec_free(&prev[i].vec);
    }

    free(cur);
    free(prev);

    if (rc != NGX_DR_SCORE_OK) {
        ngx_dr_score_result_free(out);
    }

    return rc;
}


void
ngx_dr_score_result_free(ngx_dr_score_result_t *out)
{
    if (out == NULL) {
        return;
    }

    free(out->verdicts);
    free(out->models);
    free(out->drift);

    memset(out, 0, sizeof(ngx_dr_score_result_t));
}


/*
 * Population, not sample, deviation: the window is the whole series being
 * described, not a sample of a larger one, and with as few as 2 runs the
 * sample formula would exaggerate.  Sorting first makes the sums, and so
 * the bits of the result, independent of the order given.
 */

double
ngx_dr_score_volatility(const double *scores, size_t n)
{
    double  v[NGX_DR_SCORE_HISTORY], x, mean, var;
    size_t  i, j;

    if (scores == NULL || n < 2) {
        return 0.0;
    }

    if (n > NGX_DR_SCORE_HISTORY) {
        n = NGX_DR_SCORE_HISTORY;
    }

    for (i = 0; i < n; i++) {
        if (!isfinite(scores[i])) {
            return 0.0;
        }

        x = scores[i];

        for (j = i; j > 0 && v[j - 1] > x; j--) {
            v[j] = v[j - 1];
        }

        v[j] = x;
    }

    mean = 0.0;

    for (i = 0; i < n; i++) {
        mean += v[i];
    }

    mean /= (double) n;
    var = 0.0;

    for (i = 0; i < n; i++) {
        var += (v[i] - mean) * (v[i] - mean);
    }

    return sqrt(var / (double) n);
}


/*
 * One decimal, halves away from zero on the value times ten, which is
 * how a person rounds the printed number: 0.15 gives "+0.2%" where
 * printf("%.1f") gives 0.1 because 0.15 is stored as 0.1499...
 */

size_t
ngx_dr_score_trend_format(double trend, char *buf, size_t size)
{
    int        n;
    double     r;
    long long  t, a;

    if (buf == NULL || size < NGX_DR_SCORE_TREND_LEN) {
        if (buf != NULL && size > 0) {
            buf[0] = '\0';
        }

        return 0;
    }

    if (isnan(trend)) {
        trend = 0.0;
    }

    if (trend > 1e6) {
        trend = 1e6;

    } else if (trend < -1e6) {
        trend = -1e6;
    }

    r = round(trend * 10.0);
    t = (long long) r;

    if (t == 0) {
        memcpy(buf, "\xc2\xb1" "0.0%", sizeof("\xc2\xb1" "0.0%"));
        return sizeof("\xc2\xb1" "0.0%") - 1;
    }

    a = t < 0 ? -t : t;

    n = snprintf(buf, size, "%c%lld.%lld%%", t < 0 ? '-' : '+', a / 10,
                 a % 10);

    return n < 0 ? 0 : (size_t) n;
}


ngx_dr_score_class_t
ngx_dr_score_class(double sentiment)
{
    if (sentiment > NGX_DR_SCORE_CLASS_BAND) {
        return NGX_DR_SCORE_POSITIVE;
    }

    if (sentiment < -NGX_DR_SCORE_CLASS_BAND) {
        return NGX_DR_SCORE_NEGATIVE;
    }

    return NGX_DR_SCORE_NEUTRAL;
}


ngx_dr_score_drift_status_t
ngx_dr_score_drift_status(double drift)
{
    if (drift < NGX_DR_SCORE_DRIFTING_MIN) {
        return NGX_DR_SCORE_STABLE;
    }

    if (drift < NGX_DR_SCORE_DECAYED_MIN) {
        return NGX_DR_SCORE_DRIFTING;
    }

    return NGX_DR_SCORE_DECAYED;
}


ngx_dr_score_risk_level_t
ngx_dr_score_risk_level(unsigned risk)
{
    if (risk > 60) {
        return NGX_DR_SCORE_RISK_CRITICAL;
    }

    if (risk > 30) {
        return NGX_DR_SCORE_RISK_HIGH;
    }

    if (risk > 15) {
        return NGX_DR_SCORE_RISK_MEDIUM;
    }

    return NGX_DR_SCORE_RISK_LOW;
}


const char *
ngx_dr_score_class_name(ngx_dr_score_class_t c)
{
    if (c < NGX_DR_SCORE_NEGATIVE || c > NGX_DR_SCORE_UNCLASSIFIED) {
        return "none";
    }

    return ngx_dr_score_class_names[c + 1];
}


const char *
ngx_dr_score_drift_name(ngx_dr_score_drift_status_t s)
{
    if ((unsigned) s >= NGX_DR_SCORE_NELTS(ngx_dr_score_drift_names)) {
        return "unknown";
    }

    return ngx_dr_score_drift_names[s];
}


const char *
ngx_dr_score_risk_name(ngx_dr_score_risk_level_t level)
{
    if ((unsigned) level >= NGX_DR_SCORE_NELTS(ngx_dr_score_risk_names)) {
        return "unknown";
    }

    return ngx_dr_score_risk_names[level];
}


const char *
ngx_dr_score_alert_name(unsigned alert)
{
    switch (alert) {

    case NGX_DR_SCORE_ALERT_LOW_CONSENSUS:
        return "low_consensus";

    case NGX_DR_SCORE_ALERT_DECLINING_MEMORY:
        return "declining_memory";

    case NGX_DR_SCORE_ALERT_LOW_RECOGNITION:
        return "low_recognition";

    default:
        return "unknown";
    }
}

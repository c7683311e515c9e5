
/*
 * Domain Runner: validation of request input before any query (SPEC
 * sections 5 and 9).
 *
 * Only libc.  Each check is a single forward pass over the counted input
 * with no allocation; the rules are the ones in ngx_dr_validate.h.  Input
 * that passes is what the handlers bind as query parameters: nothing here
 * makes SQL safe, it only keeps malformed values away from the database
 * and gives the client a precise reason.
 */


#include <stdint.h>
#include <string.h>
#include <limits.h>

#include "ngx_dr_validate.h"


#define NGX_DR_LABEL_MAX          63

/* RFC 3492 section 5: the parameters of punycode for IDNA */
#define NGX_DR_PUNY_BASE          36
#define NGX_DR_PUNY_TMIN          1
#define NGX_DR_PUNY_TMAX          26
#define NGX_DR_PUNY_SKEW          38
#define NGX_DR_PUNY_DAMP          700
#define NGX_DR_PUNY_INITIAL_BIAS  72
#define NGX_DR_PUNY_INITIAL_N     0x80
#define NGX_DR_PUNY_ADAPT_MAX                                                \
    (((NGX_DR_PUNY_BASE - NGX_DR_PUNY_TMIN) * NGX_DR_PUNY_TMAX) / 2)

/* 19 digits always fit: 9999999999999999999 < 2^64 */
#define NGX_DR_UINT_DIGITS_MAX    19

#define ngx_dr_is_ldh(c)                                                     \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= '0' && (c) <= '9') || (c) == '-')

#define ngx_dr_is_digit(c)        ((c) >= '0' && (c) <= '9')

#define ngx_dr_is_alpha(c)        (((c) | 0x20) >= 'a' && ((c) | 0x20) <= 'z')

#define ngx_dr_is_hex(c)                                                     \
    (ngx_dr_is_digit(c) || (((c) | 0x20) >= 'a' && ((c) | 0x20) <= 'f'))


static int ngx_dr_validate_label(const unsigned char *p, size_t len);
static int ngx_dr_punycode_check(const unsigned char *p, size_t len);
static uint32_t ngx_dr_punycode_adapt(uint32_t delta, uint32_t points,
    int first);
static size_t ngx_dr_utf8_next(const unsigned char *p, size_t len,
    uint32_t *cp);
static int ngx_dr_url_prefix(const unsigned char *s, size_t len,
    const char *prefix);
static int ngx_dr_url_host(const unsigned char *s, size_t len, int *local);
static int ngx_dr_url_path(const unsigned char *s, size_t len);


int
ngx_dr_validate_domain(const unsigned char *in, size_t len,
    unsigned char *out, size_t *out_len)
{
    int            rc;
    size_t         i, start, labels, tlen;
    unsigned char  c;

    *out_len = 0;

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    /*
     * Characters first, over the whole input: a bad byte says more about
     * what the client sent than a length or a label rule would.
     */

    for (i = 0; i < len; i++) {
        c = in[i];

        if (c < 0x20 || c == 0x7f) {
            return NGX_DR_VALID_CONTROL;
        }

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (!ngx_dr_is_ldh(c) && c != '.') {
            return NGX_DR_VALID_BAD_CHAR;
        }
    }

    /* one trailing dot names the same absolute domain; two do not */
    if (in[len - 1] == '.') {
        len--;
    }

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    if (len > NGX_DR_DOMAIN_MAX) {
        return NGX_DR_VALID_TOO_LONG;
    }

    /* byte by byte at the same index, so that in == out works */
    for (i = 0; i < len; i++) {
        c = in[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
    }

    labels = 0;
    start = 0;
    tlen = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && out[i] != '.') {
            continue;
        }

        tlen = i - start;

        rc = ngx_dr_validate_label(out + start, tlen);
        if (rc != NGX_DR_VALID_OK) {
            return rc;
        }

        labels++;
        start = i + 1;
    }

    if (labels < 2) {
        return NGX_DR_VALID_SINGLE_LABEL;
    }

    /* tlen is the length of the last label checked: the top-level one */
    if (tlen < 2) {
        return NGX_DR_VALID_BAD_TLD;
    }

    /* no TLD is numeric, so this is an IPv4 address or a typo */
    for (i = len - tlen; i < len; i++) {
        if (!ngx_dr_is_digit(out[i])) {
            break;
        }
    }

    if (i == len) {
        return NGX_DR_VALID_BAD_TLD;
    }

    *out_len = len;

    return NGX_DR_VALID_OK;
}


/* a lower-cased label of [a-z0-9-] */
static int
ngx_dr_validate_label(const unsigned char *p, size_t len)
{
    if (len == 0 || len > NGX_DR_LABEL_MAX) {
        return NGX_DR_VALID_BAD_LABEL;
    }

    /*
     * An "xn--" label is judged as punycode alone: a valid A-label never
     * ends in a hyphen, so the decoder rejects that case itself, with the
     * reason that tells the client what is actually wrong.
     */

    if (len >= 4 && p[0] == 'x' && p[1] == 'n' && p[2] == '-' && p[3] == '-')
    {
        return ngx_dr_punycode_check(p + 4, len - 4);
    }

    if (p[0] == '-' || p[len - 1] == '-') {
        return NGX_DR_VALID_BAD_LABEL;
    }

    /* RFC 5891 4.2.3.1: "??--" is reserved for future ACE prefixes */
    if (len >= 4 && p[2] == '-' && p[3] == '-') {
        return NGX_DR_VALID_BAD_LABEL;
    }

    return NGX_DR_VALID_OK;
}


/*
 * The decoder of RFC 3492 section 6.2, counting code points instead of
 * storing them.  Beyond the RFC it rejects surrogates and code points
 * above U+10FFFF, which no Unicode string holds, and a label that decodes
 * to ASCII only, which is no A-label (RFC 5890 2.3.2.1).  The input is at
 * most 59 lower-cased bytes of [a-z0-9-].
 */

static int
ngx_dr_punycode_check(const unsigned char *p, size_t len)
{
    size_t    b, in, j;
    uint32_t  n, i, oldi, w, k, t, digit, bias, out, decoded;

    /* the basic code points are those before the last delimiter */
    b = 0;

    for (j = len; j > 0; j--) {
        if (p[j - 1] == '-') {
            b = j - 1;
            break;
        }
    }

    /* a delimiter at the very start copies nothing and is not consumed */
    in = (b > 0) ? b + 1 : 0;

    n = NGX_DR_PUNY_INITIAL_N;
    i = 0;
    bias = NGX_DR_PUNY_INITIAL_BIAS;
    out = (uint32_t) b;
    decoded = 0;

    while (in < len) {
        oldi = i;
        w = 1;

        for (k = NGX_DR_PUNY_BASE; /* void */; k += NGX_DR_PUNY_BASE) {

            if (in >= len) {
                return NGX_DR_VALID_BAD_PUNYCODE;
            }

            if (p[in] >= 'a' && p[in] <= 'z') {
                digit = p[in] - 'a';

            } else if (ngx_dr_is_digit(p[in])) {
                digit = p[in] - '0' + 26;

            } else {
                return NGX_DR_VALID_BAD_PUNYCODE;
            }

            in++;

            if (digit > (UINT32_MAX - i) / w) {
                return NGX_DR_VALID_BAD_PUNYCODE;
            }

            i += digit * w;

            if (k <= bias) {
                t = NGX_DR_PUNY_TMIN;

            } else if (k >= bias + NGX_DR_PUNY_TMAX) {
                t = NGX_DR_PUNY_TMAX;

            } else {
                t = k - bias;
            }

            if (digit < t) {
                break;
            }

            if (w > UINT32_MAX / (NGX_DR_PUNY_BASE - t)) {
                return NGX_DR_VALID_BAD_PUNYCODE;
            }

            w *= NGX_DR_PUNY_BASE - t;
        }

        bias = ngx_dr_punycode_adapt(i - oldi, out + 1, oldi == 0);

        if (i / (out + 1) > UINT32_MAX - n) {
            return NGX_DR_VALID_BAD_PUNYCODE;
        }

        n += i / (out + 1);
        i %= out + 1;

        if (n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) {
            return NGX_DR_VALID_BAD_PUNYCODE;
        }

        out++;
        decoded++;
        i++;
    }

    /* n starts at 0x80 and only grows: every decoded point is non-ASCII */
    if (decoded == 0) {
        return NGX_DR_VALID_BAD_PUNYCODE;
    }

    return NGX_DR_VALID_OK;
}


/* RFC 3492 section 6.1 */
static uint32_t
ngx_dr_punycode_adapt(uint32_t delta, uint32_t points, int first)
{
    uint32_t  k;

    delta = first ? delta / NGX_DR_PUNY_DAMP : delta / 2;
    delta += delta / points;

    k = 0;

    while (delta > NGX_DR_PUNY_ADAPT_MAX) {
        delta /= NGX_DR_PUNY_BASE - NGX_DR_PUNY_TMIN;
        k += NGX_DR_PUNY_BASE;
    }

    return k + ((NGX_DR_PUNY_BASE - NGX_DR_PUNY_TMIN + 1) * delta)
               / (delta + NGX_DR_PUNY_SKEW);
}


int
ngx_dr_validate_uint(const unsigned char *s, size_t len,
    unsigned long min, unsigned long max, unsigned long *out)
{
    size_t         i, digits;
    unsigned long  v, d;

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_dr_is_digit(s[i])) {
            return NGX_DR_VALID_NOT_NUMBER;
        }
    }

    v = 0;
    digits = 0;

    for (i = 0; i < len; i++) {
        d = s[i] - '0';

        /* leading zeros change nothing and would count as digits */
        if (v == 0 && d == 0) {
            continue;
        }

        if (++digits > NGX_DR_UINT_DIGITS_MAX) {
            return NGX_DR_VALID_OUT_OF_RANGE;
        }

        /* only where unsigned long is narrower than 64 bits */
        if (v > (ULONG_MAX - d) / 10) {
            return NGX_DR_VALID_OUT_OF_RANGE;
        }

        v = v * 10 + d;
    }

    if (v < min || v > max) {
        return NGX_DR_VALID_OUT_OF_RANGE;
    }

    *out = v;

    return NGX_DR_VALID_OK;
}


int
ngx_dr_validate_search(const unsigned char *s, size_t len)
{
    size_t    pos, n, points;
    uint32_t  cp;

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    pos = 0;
    points = 0;

    while (pos < len) {
        n = ngx_dr_utf8_next(s + pos, len - pos, &cp);
        if (n == 0) {
            return NGX_DR_VALID_BAD_UTF8;
        }

        if (++points > NGX_DR_SEARCH_MAX) {
            return NGX_DR_VALID_TOO_LONG;
        }

        /* C0, DEL and C1: they split log lines and confuse terminals */
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            return NGX_DR_VALID_CONTROL;
        }

        pos += n;
    }

    return NGX_DR_VALID_OK;
}


/*
 * Decodes one code point of well-formed UTF-8 (Unicode 15, table 3-7);
 * returns its length in bytes, or 0 for an ill-formed or truncated
 * sequence, an overlong form, a surrogate or anything above U+10FFFF.
 */

static size_t
ngx_dr_utf8_next(const unsigned char *p, size_t len, uint32_t *cp)
{
    size_t    n, i;
    uint32_t  c, min;

    c = p[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        c &= 0x1f;
        min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        c &= 0x0f;
        min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        c &= 0x07;
        min = 0x10000;

    } else {
        /* a continuation byte, C0/C1 (always overlong) or F5..FF */
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (p[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }

    *cp = c;

    return n;
}


int
ngx_dr_validate_bool(const unsigned char *s, size_t len, int *out)
{
    if ((len == 4 && memcmp(s, "true", 4) == 0)
        || (len == 1 && s[0] == '1'))
    {
        *out = 1;
        return NGX_DR_VALID_OK;
    }

    if ((len == 5 && memcmp(s, "false", 5) == 0)
        || (len == 1 && s[0] == '0'))
    {
        *out = 0;
        return NGX_DR_VALID_OK;
    }

    return NGX_DR_VALID_BAD_CHAR;
}


int
ngx_dr_validate_base_url(const unsigned char *s, size_t len, int *local)
{
    int     tls, rc;
    size_t  i, start, end;

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            return NGX_DR_VALID_CONTROL;
        }

        if (s[i] == ' ' || s[i] > 0x7f) {
            return NGX_DR_VALID_BAD_CHAR;
        }
    }

    if (ngx_dr_url_prefix(s, len, "https://")) {
        tls = 1;
        start = sizeof("https://") - 1;

    } else if (ngx_dr_url_prefix(s, len, "http://")) {
        tls = 0;
        start = sizeof("http://") - 1;

    } else {
        return NGX_DR_VALID_BAD_SCHEME;
    }

    /*
     * The authority ends at the path.  An '@' in it is user information
     * to libcurl, and what precedes it is no host: "http://127.0.0.1@x/"
     * goes to x.  '?' and '#' would end it too, and are refused below.
     */

    for (end = start; end < len && s[end] != '/'; end++) {
        if (s[end] == '@') {
            return NGX_DR_VALID_USERINFO;
        }
    }

    rc = ngx_dr_url_host(s + start, end - start, local);
    if (rc != NGX_DR_VALID_OK) {
        return rc;
    }

    rc = ngx_dr_url_path(s + end, len - end);
    if (rc != NGX_DR_VALID_OK) {
        return rc;
    }

    if (!tls && !*local) {
        return NGX_DR_VALID_NOT_LOCAL;
    }

    return NGX_DR_VALID_OK;
}


/* s starts with prefix, a lower-case scheme, in any case */

static int
ngx_dr_url_prefix(const unsigned char *s, size_t len, const char *prefix)
{
    size_t  i, n;

    n = strlen(prefix);

    if (len < n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if ((s[i] | 0x20) != (unsigned char) prefix[i]
            && s[i] != (unsigned char) prefix[i])
        {
            return 0;
        }
    }

    return 1;
}


/* host[:port] or [IPv6][:port]; *local for this machine's three names */

static int
ngx_dr_url_host(const unsigned char *s, size_t len, int *local)
{
    size_t         i, port;
    unsigned long  n;

    *local = 0;

    if (len > 0 && s[0] == '[') {
        for (i = 1; i < len && s[i] != ']'; i++) {
            if (!ngx_dr_is_hex(s[i]) && s[i] != ':' && s[i] != '.') {
                return NGX_DR_VALID_BAD_HOST;
            }
        }

        if (i == len || i == 1) {
            return NGX_DR_VALID_BAD_HOST;
        }

        *local = (i == 4 && memcmp(s + 1, "::1", 3) == 0);
        port = i + 1;

    } else {
        for (i = 0; i < len && s[i] != ':'; i++) {
            if (!ngx_dr_is_alpha(s[i]) && !ngx_dr_is_digit(s[i])
                && s[i] != '.' && s[i] != '-' && s[i] != '_')
            {
                return NGX_DR_VALID_BAD_HOST;
            }
        }

        if (i == 0) {
            return NGX_DR_VALID_BAD_HOST;
        }

        *local = (i == 9 && (memcmp(s, "127.0.0.1", 9) == 0
                             || ngx_dr_url_prefix(s, 9, "localhost")));
        port = i;
    }

    if (port == len) {
        return NGX_DR_VALID_OK;
    }

    if (s[port] != ':') {
        *local = 0;
        return NGX_DR_VALID_BAD_HOST;
    }

    if (ngx_dr_validate_uint(s + port + 1, len - port - 1, 1, 65535, &n)
        != NGX_DR_VALID_OK)
    {
        *local = 0;
        return NGX_DR_VALID_BAD_PORT;
    }

    return NGX_DR_VALID_OK;
}


/* nothing, or '/' and RFC 3986 path characters: no query, no fragment */

static int
ngx_dr_url_path(const unsigned char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {

        if (s[i] == '%') {
            if (i + 2 >= len || !ngx_dr_is_hex(s[i + 1])
                || !ngx_dr_is_hex(s[i + 2]))
            {
                return NGX_DR_VALID_BAD_CHAR;
            }

            i += 2;
            continue;
        }

        if (!ngx_dr_is_alpha(s[i]) && !ngx_dr_is_digit(s[i])
            && strchr("-._~!$&'()*+,;=:@/", s[i]) == NULL)
        {
            return NGX_DR_VALID_BAD_CHAR;
        }
    }

    return NGX_DR_VALID_OK;
}


/* ---------------------------------------------------------------------
 * times, days and links of operator input
 */


static int
ngx_dr_validate_digits(const unsigned char *s, size_t n)
{
    int     v;
    size_t  i;

    v = 0;

    for (i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }

    return v;
}


/* "YYYY-MM-DD" of a real day from 1970 on, in its first 10 bytes */

static int
ngx_dr_validate_day(const unsigned char *s, size_t len)
{
    int      year, month, day, days;
    size_t   i;

    static const char  shape[] = "dddd-dd-dd";

    if (len < sizeof(shape) - 1) {
        return NGX_DR_VALID_BAD_CHAR;
    }

    for (i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) {
            return NGX_DR_VALID_BAD_CHAR;
        }
    }

    year = ngx_dr_validate_digits(s, 4);
    month = ngx_dr_validate_digits(s + 5, 2);
    day = ngx_dr_validate_digits(s + 8, 2);

    days = (month == 2) ? ((year % 4 == 0 && year % 100 != 0)
                           || year % 400 == 0 ? 29 : 28)
           : (month == 4 || month == 6 || month == 9 || month == 11) ? 30
           : 31;

    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days) {
        return NGX_DR_VALID_OUT_OF_RANGE;
    }

    return NGX_DR_VALID_OK;
}


int
ngx_dr_validate_date(const unsigned char *s, size_t len)
{
    int  rc;

    rc = ngx_dr_validate_day(s, len);

    if (rc == NGX_DR_VALID_OK && len != 10) {
        return NGX_DR_VALID_BAD_CHAR;
    }

    return rc;
}


int
ngx_dr_validate_time(const unsigned char *s, size_t len)
{
    int     rc;
    size_t  i;

    rc = ngx_dr_validate_day(s, len);
    if (rc != NGX_DR_VALID_OK) {
        return rc;
    }

    if (len < 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':') {
        return NGX_DR_VALID_BAD_CHAR;
    }

    for (i = 11; i < 19; i += 3) {
        if (s[i] < '0' || s[i] > '9' || s[i + 1] < '0' || s[i + 1] > '9') {
            return NGX_DR_VALID_BAD_CHAR;
        }
    }

    if (ngx_dr_validate_digits(s + 11, 2) > 23
        || ngx_dr_validate_digits(s + 14, 2) > 59
        || ngx_dr_validate_digits(s + 17, 2) > 59)
    {
        return NGX_DR_VALID_OUT_OF_RANGE;
    }

    i = 19;

    if (s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) { /* void */ }
    }

    if (i + 1 == len && s[i] == 'Z') {
        return NGX_DR_VALID_OK;
    }

    /* offsets run from -12:00 to +14:00 */

    if (i + 6 == len && (s[i] == '+' || s[i] == '-')
        && s[i + 1] >= '0' && s[i + 1] <= '1' && s[i + 2] >= '0'
        && s[i + 2] <= '9' && s[i + 3] == ':' && s[i + 4] >= '0'
        && s[i + 4] <= '5' && s[i + 5] >= '0' && s[i + 5] <= '9')
    {
        return ngx_dr_validate_digits(s + i + 1, 2) <= 14
               ? NGX_DR_VALID_OK : NGX_DR_VALID_OUT_OF_RANGE;
    }

    return NGX_DR_VALID_BAD_CHAR;
}


int
ngx_dr_validate_text(const unsigned char *s, size_t len, size_t max)
{
    size_t  i;

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    if (len > max) {
        return NGX_DR_VALID_TOO_LONG;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f
            || (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80
                && s[i + 1] <= 0x9f))
        {
            return NGX_DR_VALID_CONTROL;
        }
    }

    return NGX_DR_VALID_OK;
}


int
ngx_dr_validate_link(const unsigned char *s, size_t len)
{
    size_t  i, host;

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    if (len > NGX_DR_LINK_MAX) {
        return NGX_DR_VALID_TOO_LONG;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            return NGX_DR_VALID_CONTROL;
        }

        if (s[i] == ' ' || s[i] >= 0x80) {
            return NGX_DR_VALID_BAD_CHAR;
        }
    }

    if (ngx_dr_url_prefix(s, len, "https://")) {
        host = 8;

    } else if (ngx_dr_url_prefix(s, len, "http://")) {
        host = 7;

    } else {
        return NGX_DR_VALID_BAD_SCHEME;
    }

    for (i = host; i < len && s[i] != '/' && s[i] != '?' && s[i] != '#';
         i++)
    {
        if (s[i] == '@') {
            return NGX_DR_VALID_USERINFO;
        }

        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'
              || s[i] == ':' || s[i] == '[' || s[i] == ']'))
        {
            return NGX_DR_VALID_BAD_HOST;
        }
    }

    return (i == host) ? NGX_DR_VALID_BAD_HOST : NGX_DR_VALID_OK;
}



const char *
ngx_dr_validate_reason(int code)
{
    /* indexed by code; one sentence has to fit every function's use */
    static const char  *reasons[] = {
        "the value is valid",
        "the value is empty",
        "the value is too long: a domain name has at most 253 characters,"
            " a search term at most 100",
        "the value contains a character that is not allowed",
        "a label is empty, longer than 63 characters, or has a hyphen"
            " at its start or end or in its third and fourth characters",
        "the domain name has a single label: it needs a dot",
        "the top-level label is numeric or a single character",
        "an xn-- label is not valid punycode for a non-ASCII name",
        "the value is not a decimal number",
        "the number is out of range",
        "the value is not valid UTF-8",
        "the value contains a control character",
        "the URL starts with neither https:// nor http://",
        "the URL carries user information (an '@') before its path",
        "the URL's host is empty or malformed",
        "the URL's port is not a number from 1 to 65535",
        "plain http goes only to this machine: 127.0.0.1, [::1] or localhost"
    };

    if (code < 0 || (size_t) code >= sizeof(reasons) / sizeof(reasons[0])) {
        return "the value is invalid";
    }

    return reasons[code];
}

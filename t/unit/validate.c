
/*
 * Domain Runner: unit tests of ngx_dr_module/ngx_dr_validate.c, in TAP.
 *
 * The inputs are the ones a client really sends: names typed with capitals
 * or a trailing dot, IPv4 addresses, raw UTF-8 IDNs, percent escapes that
 * were never decoded, SQL fragments and NUL bytes.  The punycode vectors
 * come from RFC 3492 section 7.1 and from names in use; the ones that
 * must fail were encoded by hand to land on U+D800 and U+110000.
 *
 * Build and run (t/21-validate-unit.t runs the binary under prove):
 *
 *   mkdir -p build/unit && cc -std=c99 -O2 -g -Wall -Wextra -Werror \
 *       -Ingx_dr_module -o build/unit/validate t/unit/validate.c \
 *       ngx_dr_module/ngx_dr_score.c ngx_dr_module/ngx_dr_validate.c -lm
 */


#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ngx_dr_validate.h"
#include "tap.h"


/* room for the longest input below and the canaries after it */
#define BUF_SIZE  1024

#define CANARY    0xa5

#define NELTS(a)  (sizeof(a) / sizeof((a)[0]))

/* a string literal with its length, NUL bytes inside included */
#define S(lit)    (lit), (sizeof(lit) - 1)


static const char *esc(const char *s, size_t len);
static void domain(const char *in, size_t len, int code, const char *expect);
static char *repeat(char *buf, const char *unit, size_t n);
static void number(const char *s, unsigned long min, unsigned long max,
    int code, unsigned long expect);
static void search(const char *s, size_t len, int code, const char *name);
static void boolean(const char *s, size_t len, int code, int expect);
static void base_url(const char *s, size_t len, int code, int expect);
static void test_domain_valid(void);
static void test_domain_invalid(void);
static void test_domain_limits(void);
static void test_domain_punycode(void);
static void test_domain_in_place(void);
static void test_uint(void);
static void test_search(void);
static void test_bool(void);
static void test_base_url(void);
static void test_reason(void);
static void test_time_and_link(void);


/* calls that wrote past the bytes they were allowed to */
static int  overruns;


/* printable test names for inputs holding NULs, controls and UTF-8 */
static const char *
esc(const char *s, size_t len)
{
    size_t               i, n;
    unsigned char        c;
    static char          buf[4 * 300 + 16];
    static const char    hex[] = "0123456789abcdef";

    n = 0;

    for (i = 0; i < len && n + 8 < sizeof(buf); i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[n++] = (char) c;
            continue;
        }

        buf[n++] = '\\';
        buf[n++] = 'x';
        buf[n++] = hex[c >> 4];
        buf[n++] = hex[c & 0xf];
    }

    if (i < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }

    buf[n] = '\0';

    return buf;
}


/*
 * Two assertions per input: the code, then the result of a valid name or
 * a zero *out_len for a rejected one.  The output buffer has canaries
 * after the len bytes the caller promises; test_domain_limits counts any
 * that were hit.
 */

static void
domain(const char *in, size_t len, int code, const char *expect)
{
    int             rc;
    size_t          i, out_len;
    unsigned char   out[BUF_SIZE];
    char            res[BUF_SIZE];
    const char     *name;

    memset(out, CANARY, sizeof(out));
    out_len = 12345;

    rc = ngx_dr_validate_domain((const unsigned char *) in, len, out,
                                &out_len);

    for (i = len; i < sizeof(out); i++) {
        if (out[i] != CANARY) {
            overruns++;
            diag("'%s' wrote byte %zu", esc(in, len), i);
            break;
        }
    }

    name = esc(in, len);

    if (code == NGX_DR_VALID_OK) {
        is_int(rc, code, "domain '%s' is valid", name);

        if (out_len > len) {
            out_len = len;
        }

        memcpy(res, out, out_len);
        res[out_len] = '\0';

        is_str(res, expect, "domain '%s' becomes '%s'", esc(in, len),
               expect);

    } else {
        is_int(rc, code, "domain '%s': %s", name,
               ngx_dr_validate_reason(code));
        is_int(out_len, 0, "domain '%s': no result", esc(in, len));
    }
}


/* n copies of unit, NUL-terminated, in buf */
static char *
repeat(char *buf, const char *unit, size_t n)
{
    size_t  i, len;

    len = strlen(unit);

    for (i = 0; i < n; i++) {
        memcpy(buf + i * len, unit, len);
    }

    buf[n * len] = '\0';

    return buf;
}


static void
test_domain_valid(void)
{
    domain(S("example.com"), NGX_DR_VALID_OK, "example.com");
    domain(S("EXAMPLE.COM."), NGX_DR_VALID_OK, "example.com");
    domain(S("Example.Co.UK"), NGX_DR_VALID_OK, "example.co.uk");
    domain(S("a.b.c.d.example.co.uk"), NGX_DR_VALID_OK,
           "a.b.c.d.example.co.uk");
    domain(S("1password.com"), NGX_DR_VALID_OK, "1password.com");
    domain(S("web2.0day.io"), NGX_DR_VALID_OK, "web2.0day.io");
    domain(S("123.example"), NGX_DR_VALID_OK, "123.example");
    domain(S("my-site.example"), NGX_DR_VALID_OK, "my-site.example");
    domain(S("a-b-c.de"), NGX_DR_VALID_OK, "a-b-c.de");
    domain(S("x.io"), NGX_DR_VALID_OK, "x.io");

    /* only the top-level label has to hold a letter */
    domain(S("example.a1"), NGX_DR_VALID_OK, "example.a1");
}


static void
test_domain_invalid(void)
{
    domain(S(""), NGX_DR_VALID_EMPTY, NULL);

    /* the root alone: nothing is left once its dot is stripped */
    domain(S("."), NGX_DR_VALID_EMPTY, NULL);

    domain(S(".."), NGX_DR_VALID_BAD_LABEL, NULL);
    domain(S("a..b.com"), NGX_DR_VALID_BAD_LABEL, NULL);
    domain(S(".example.com"), NGX_DR_VALID_BAD_LABEL, NULL);
    domain(S("example.com.."), NGX_DR_VALID_BAD_LABEL, NULL);
    domain(S("-a.com"), NGX_DR_VALID_BAD_LABEL, NULL);
    domain(S("a-.com"), NGX_DR_VALID_BAD_LABEL, NULL);
    domain(S("example.-com"), NGX_DR_VALID_BAD_LABEL, NULL);
    domain(S("ab--cd.com"), NGX_DR_VALID_BAD_LABEL, NULL);

    /* only the third and fourth positions are reserved */
    domain(S("XN-cd.com"), NGX_DR_VALID_OK, "xn-cd.com");
    domain(S("abc--d.com"), NGX_DR_VALID_OK, "abc--d.com");

    domain(S("localhost"), NGX_DR_VALID_SINGLE_LABEL, NULL);
    domain(S("localhost."), NGX_DR_VALID_SINGLE_LABEL, NULL);

    domain(S("1.2.3.4"), NGX_DR_VALID_BAD_TLD, NULL);
    domain(S("192.168.0.1."), NGX_DR_VALID_BAD_TLD, NULL);
    domain(S("example.c"), NGX_DR_VALID_BAD_TLD, NULL);
    domain(S("example.123"), NGX_DR_VALID_BAD_TLD, NULL);

    domain(S("exa mple.com"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("exa_mple.com"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("ex%41mple.com"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("ex\xc3\xa1mple.com"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("example.com/admin"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("user@example.com"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("[::1].com"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("a.com'--"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("a.com;drop"), NGX_DR_VALID_BAD_CHAR, NULL);
    domain(S("a.com' OR '1'='1"), NGX_DR_VALID_BAD_CHAR, NULL);

    domain(S("a.com\0.evil.com"), NGX_DR_VALID_CONTROL, NULL);
    domain(S("example.com\r\nX-Injected: 1"), NGX_DR_VALID_CONTROL, NULL);
    domain(S("exa\tmple.com"), NGX_DR_VALID_CONTROL, NULL);
    domain(S("example.com\x7f"), NGX_DR_VALID_CONTROL, NULL);

    /* a bad character wins over a length or label fault later on */
    domain(S("-a..b.com "), NGX_DR_VALID_BAD_CHAR, NULL);
}


static void
test_domain_limits(void)
{
    char  l63[64], l64[65], l61[62], l62[63], name[256],
          buf[BUF_SIZE];

    repeat(l63, "a", 63);
    repeat(l64, "a", 64);
    repeat(l61, "d", 61);
    repeat(l62, "d", 62);

    snprintf(buf, sizeof(buf), "%s.com", l63);
    domain(buf, strlen(buf), NGX_DR_VALID_OK, buf);

    snprintf(buf, sizeof(buf), "%s.com", l64);
    domain(buf, strlen(buf), NGX_DR_VALID_BAD_LABEL, NULL);

    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
    snprintf(name, sizeof(name), "%s.%s.%s.%s", l63, l63, l63, l61);
    is_int(strlen(name), 253, "the long name has 253 characters");
    domain(name, strlen(name), NGX_DR_VALID_OK, name);

    /* the stripped dot does not count: 254 bytes sent, 253 kept */
    snprintf(buf, sizeof(buf), "%s.", name);
    domain(buf, strlen(buf), NGX_DR_VALID_OK, name);

    snprintf(buf, sizeof(buf), "%s.%s.%s.%s", l63, l63, l63, l62);
    domain(buf, strlen(buf), NGX_DR_VALID_TOO_LONG, NULL);

    /* a long run of valid characters is too long, not a bad label */
    repeat(buf, "a.", 300);
    domain(buf, strlen(buf), NGX_DR_VALID_TOO_LONG, NULL);
}


static void
test_domain_punycode(void)
{
    /* "b\u00fccher", the usual example of the format */
    domain(S("xn--bcher-kva.example"), NGX_DR_VALID_OK,
           "xn--bcher-kva.example");
    domain(S("XN--BCHER-KVA.EXAMPLE"), NGX_DR_VALID_OK,
           "xn--bcher-kva.example");

    /* "example" in Russian under .rf: a punycode TLD is not numeric */
    domain(S("xn--e1afmkfd.xn--p1ai"), NGX_DR_VALID_OK,
           "xn--e1afmkfd.xn--p1ai");

    /* RFC 3492 7.1 (A) Arabic and (B) simplified Chinese */
    domain(S("xn--egbpdaj6bu4bxfgehfvwxn.com"), NGX_DR_VALID_OK,
           "xn--egbpdaj6bu4bxfgehfvwxn.com");
    domain(S("xn--ihqwcrb4cv8a8dqg056pqjye.cn"), NGX_DR_VALID_OK,
           "xn--ihqwcrb4cv8a8dqg056pqjye.cn");

    /* U+10FFFF is the last code point; U+D7FF is just below surrogates */
    domain(S("xn--dn32g.com"), NGX_DR_VALID_OK, "xn--dn32g.com");
    domain(S("xn--hb9b.com"), NGX_DR_VALID_OK, "xn--hb9b.com");

    domain(S("xn--.com"), NGX_DR_VALID_BAD_PUNYCODE, NULL);

    /* RFC 3492 reads "zz-" as plain "zz": no A-label is ASCII only */
    domain(S("xn--zz-.com"), NGX_DR_VALID_BAD_PUNYCODE, NULL);

    /* U+D800, a surrogate, and U+110000, past the end of Unicode */
    domain(S("xn--ib9b.com"), NGX_DR_VALID_BAD_PUNYCODE, NULL);
    domain(S("xn--en32g.com"), NGX_DR_VALID_BAD_PUNYCODE, NULL);

    /* a variable-length integer that never ends, and one that overflows */
    domain(S("xn--99999.com"), NGX_DR_VALID_BAD_PUNYCODE, NULL);
    domain(S("xn--9999999999a.com"), NGX_DR_VALID_BAD_PUNYCODE, NULL);

    /* a delimiter with no basic code points before it is a bad digit */
    domain(S("xn---tda.com"), NGX_DR_VALID_BAD_PUNYCODE, NULL);
}


static void
test_domain_in_place(void)
{
    int            rc;
    size_t         out_len;
    unsigned char  buf[] = "WWW.Example.COM.";

    rc = ngx_dr_validate_domain(buf, sizeof(buf) - 1, buf, &out_len);
    is_int(rc, NGX_DR_VALID_OK, "in place: valid");
    ok(out_len == 15 && memcmp(buf, "www.example.com", 15) == 0,
       "in place: lower-cased over its own input");

    is_int(overruns, 0, "no domain call wrote past len bytes of out");
}


static void
number(const char *s, unsigned long min, unsigned long max, int code,
    unsigned long expect)
{
    int            rc;
    unsigned long  v;

    v = 4242;
    rc = ngx_dr_validate_uint((const unsigned char *) s, strlen(s), min, max,
                              &v);

    if (code == NGX_DR_VALID_OK) {
        ok(rc == NGX_DR_VALID_OK && v == expect,
           "uint '%s' in %lu..%lu is %lu", s, min, max, expect);

        if (rc != NGX_DR_VALID_OK || v != expect) {
            diag("got code %d, value %lu", rc, v);
        }

    } else {
        ok(rc == code && v == 4242, "uint '%s' in %lu..%lu: %s", s, min,
           max, ngx_dr_validate_reason(code));

        if (rc != code || v != 4242) {
            diag("got code %d, value %lu", rc, v);
        }
    }
}


static void
test_uint(void)
{
    number("0", 0, 100, NGX_DR_VALID_OK, 0);
    number("1", 1, 100, NGX_DR_VALID_OK, 1);
    number("100", 1, 100, NGX_DR_VALID_OK, 100);
    number("20", 1, 100, NGX_DR_VALID_OK, 20);
    number("007", 1, 100, NGX_DR_VALID_OK, 7);
    number("101", 1, 100, NGX_DR_VALID_OUT_OF_RANGE, 0);
    number("0", 1, 100, NGX_DR_VALID_OUT_OF_RANGE, 0);
    number("", 1, 100, NGX_DR_VALID_EMPTY, 0);
    number("-1", 0, 100, NGX_DR_VALID_NOT_NUMBER, 0);
    number("+1", 0, 100, NGX_DR_VALID_NOT_NUMBER, 0);
    number(" 1", 0, 100, NGX_DR_VALID_NOT_NUMBER, 0);
    number("1 ", 0, 100, NGX_DR_VALID_NOT_NUMBER, 0);
    number("1e3", 0, ULONG_MAX, NGX_DR_VALID_NOT_NUMBER, 0);
    number("0x10", 0, ULONG_MAX, NGX_DR_VALID_NOT_NUMBER, 0);
    number("1.5", 0, ULONG_MAX, NGX_DR_VALID_NOT_NUMBER, 0);
    number("1;", 0, ULONG_MAX, NGX_DR_VALID_NOT_NUMBER, 0);

    /* a non-digit anywhere is NOT_NUMBER, however long the digits */
    number("123456789012345678901234x", 0, ULONG_MAX,
           NGX_DR_VALID_NOT_NUMBER, 0);

    /* 19 digits always fit in 64 bits */
    number("9999999999999999999", 0, ULONG_MAX,
           ULONG_MAX >= 9999999999999999999ULL ? NGX_DR_VALID_OK
                                               : NGX_DR_VALID_OUT_OF_RANGE,
           (unsigned long) (ULONG_MAX >= 9999999999999999999ULL
                            ? 9999999999999999999ULL : 0));

    /* 20 digits never do by the rule, even ULONG_MAX itself */
    number("12345678901234567890", 0, ULONG_MAX,
           NGX_DR_VALID_OUT_OF_RANGE, 0);
    number("18446744073709551615", 0, ULONG_MAX,
           NGX_DR_VALID_OUT_OF_RANGE, 0);
    number("18446744073709551616", 0, ULONG_MAX,
           NGX_DR_VALID_OUT_OF_RANGE, 0);

    /* leading zeros are not significant digits */
    number("000000000000000000000042", 1, 100, NGX_DR_VALID_OK, 42);
}


static void
search(const char *s, size_t len, int code, const char *name)
{
    is_int(ngx_dr_validate_search((const unsigned char *) s, len), code,
           "search %s '%s'", name, esc(s, len));
}


static void
test_search(void)
{
    char  buf[BUF_SIZE];

    search(S("running shoes"), NGX_DR_VALID_OK, "ASCII");
    search(S("caf\xc3\xa9"), NGX_DR_VALID_OK, "UTF-8 2 bytes");
    search(S("\xe6\x97\xa5\xe6\x9c\xac"), NGX_DR_VALID_OK, "UTF-8 3 bytes");
    search(S("\xf0\x9f\x98\x80"), NGX_DR_VALID_OK, "UTF-8 4 bytes");
    search(S("\xf4\x8f\xbf\xbf"), NGX_DR_VALID_OK, "U+10FFFF");
    search(S("\xc2\xa0"), NGX_DR_VALID_OK, "U+00A0 after C1");

    /* bound as a parameter, never spliced: SQL text is just text */
    search(S("' OR 1=1; --"), NGX_DR_VALID_OK, "SQL text");

    search(S(""), NGX_DR_VALID_EMPTY, "empty");

    search(S("\xc0\xaf"), NGX_DR_VALID_BAD_UTF8, "overlong '/'");
    search(S("\xe0\x80\xaf"), NGX_DR_VALID_BAD_UTF8, "overlong 3 bytes");
    search(S("\xf0\x8f\xbf\xbf"), NGX_DR_VALID_BAD_UTF8, "overlong 4 bytes");
    search(S("\xed\xa0\x80"), NGX_DR_VALID_BAD_UTF8, "lone surrogate");
    search(S("\xed\xbf\xbf"), NGX_DR_VALID_BAD_UTF8, "low surrogate");
    search(S("\xf4\x90\x80\x80"), NGX_DR_VALID_BAD_UTF8, "above U+10FFFF");
    search(S("\xf5\x80\x80\x80"), NGX_DR_VALID_BAD_UTF8, "F5 lead");
    search(S("caf\xc3"), NGX_DR_VALID_BAD_UTF8, "truncated at end");
    search(S("\xe6\x97"), NGX_DR_VALID_BAD_UTF8, "truncated 3 bytes");
    search(S("\xc3\x28"), NGX_DR_VALID_BAD_UTF8, "bad continuation");
    search(S("\x80"), NGX_DR_VALID_BAD_UTF8, "lone continuation");
    search(S("\xff"), NGX_DR_VALID_BAD_UTF8, "FF byte");

    search(S("a\tb"), NGX_DR_VALID_CONTROL, "tab");
    search(S("a\nb"), NGX_DR_VALID_CONTROL, "newline");
    search(S("a\0b"), NGX_DR_VALID_CONTROL, "NUL");
    search(S("a\x7f"), NGX_DR_VALID_CONTROL, "DEL");
    search(S("a\xc2\x85"), NGX_DR_VALID_CONTROL, "U+0085 NEL (C1)");
    search(S("\xc2\x9f"), NGX_DR_VALID_CONTROL, "U+009F (C1)");

    repeat(buf, "a", 100);
    search(buf, 100, NGX_DR_VALID_OK, "100 ASCII");
    repeat(buf, "a", 101);
    search(buf, 101, NGX_DR_VALID_TOO_LONG, "101 ASCII");

    /* code points, not bytes: 200 bytes are 100 characters */
    repeat(buf, "\xc3\xa9", 100);
    search(buf, 200, NGX_DR_VALID_OK, "100 x U+00E9");
    repeat(buf, "\xc3\xa9", 101);
    search(buf, 202, NGX_DR_VALID_TOO_LONG, "101 x U+00E9");
}


static void
boolean(const char *s, size_t len, int code, int expect)
{
    int  rc, v;

    v = 42;
    rc = ngx_dr_validate_bool((const unsigned char *) s, len, &v);

    ok(rc == code && v == (code == NGX_DR_VALID_OK ? expect : 42),
       "bool '%s' is %s", esc(s, len),
       code != NGX_DR_VALID_OK ? "rejected" : expect ? "true" : "false");
}


static void
test_bool(void)
{
    boolean(S("true"), NGX_DR_VALID_OK, 1);
    boolean(S("false"), NGX_DR_VALID_OK, 0);
    boolean(S("1"), NGX_DR_VALID_OK, 1);
    boolean(S("0"), NGX_DR_VALID_OK, 0);
    boolean(S("TRUE"), NGX_DR_VALID_BAD_CHAR, 0);
    boolean(S("yes"), NGX_DR_VALID_BAD_CHAR, 0);
    boolean(S(""), NGX_DR_VALID_BAD_CHAR, 0);
    boolean(S("true "), NGX_DR_VALID_BAD_CHAR, 0);
    boolean(S("tru"), NGX_DR_VALID_BAD_CHAR, 0);
    boolean(S("10"), NGX_DR_VALID_BAD_CHAR, 0);
    boolean(S("1\0"), NGX_DR_VALID_BAD_CHAR, 0);
}


static void
base_url(const char *s, size_t len, int code, int expect)
{
    int  rc, local;

    local = 42;
    rc = ngx_dr_validate_base_url((const unsigned char *) s, len, &local);

    ok(rc == code && (code != NGX_DR_VALID_OK || local == expect),
       "base URL '%s' is %s", esc(s, len),
       code != NGX_DR_VALID_OK ? ngx_dr_validate_reason(code)
       : expect ? "valid, this machine" : "valid");
    if (rc != code) {
        diag("got %d (%s)", rc, ngx_dr_validate_reason(rc));
    }
}


static void
test_base_url(void)
{
    /* the providers' own, and the bundled simulator's */
    base_url(S("https://api.openai.com/v1"), NGX_DR_VALID_OK, 0);
    base_url(S("https://generativelanguage.googleapis.com"),
             NGX_DR_VALID_OK, 0);
    base_url(S("HTTPS://api.x.ai/v1/"), NGX_DR_VALID_OK, 0);
    base_url(S("https://gw.example.com:8443/openai/v1"), NGX_DR_VALID_OK, 0);
    base_url(S("https://[2001:db8::1]:443/v1"), NGX_DR_VALID_OK, 0);
    base_url(S("http://127.0.0.1:8089/openai/v1"), NGX_DR_VALID_OK, 1);
    base_url(S("http://127.0.0.1"), NGX_DR_VALID_OK, 1);
    base_url(S("http://localhost:8089/anthropic"), NGX_DR_VALID_OK, 1);
    base_url(S("http://LocalHost/x"), NGX_DR_VALID_OK, 1);
    base_url(S("http://[::1]:8089/google"), NGX_DR_VALID_OK, 1);
    base_url(S("https://127.0.0.1/v1"), NGX_DR_VALID_OK, 1);
    base_url(S("http://127.0.0.1/v1/@evil.example"), NGX_DR_VALID_OK, 1);
    base_url(S("http://127.0.0.1/a%2Fb"), NGX_DR_VALID_OK, 1);

    /* what a prefix match let through: the host is elsewhere */
    base_url(S("http://127.0.0.1@evil.example/"), NGX_DR_VALID_USERINFO, 0);
    base_url(S("http://localhost@evil.example"), NGX_DR_VALID_USERINFO, 0);
    base_url(S("http://127.0.0.1:8089@evil.example/"),
             NGX_DR_VALID_USERINFO, 0);
    base_url(S("https://user:not-a-password@api.openai.com/v1"),
             NGX_DR_VALID_USERINFO, 0);
    base_url(S("http://127.0.0.1.evil.example/"), NGX_DR_VALID_NOT_LOCAL, 0);
    base_url(S("http://localhost.evil.example/"), NGX_DR_VALID_NOT_LOCAL, 0);
    base_url(S("http://127.0.0.10/"), NGX_DR_VALID_NOT_LOCAL, 0);
    base_url(S("http://127.1/"), NGX_DR_VALID_NOT_LOCAL, 0);
    base_url(S("http://[::1].evil/"), NGX_DR_VALID_BAD_HOST, 0);
    base_url(S("http://[::2]/"), NGX_DR_VALID_NOT_LOCAL, 0);
    base_url(S("http://api.openai.com/v1"), NGX_DR_VALID_NOT_LOCAL, 0);
    base_url(S("http://127.0.0.1?@evil.example/"),
             NGX_DR_VALID_USERINFO, 0);
    base_url(S("http://127.0.0.1#@evil.example/"),
             NGX_DR_VALID_USERINFO, 0);
    base_url(S("http://127.0.0.1\\@evil.example/"),
             NGX_DR_VALID_USERINFO, 0);

    /* malformed */
    base_url(S(""), NGX_DR_VALID_EMPTY, 0);
    base_url(S("ftp://127.0.0.1/"), NGX_DR_VALID_BAD_SCHEME, 0);
    base_url(S("127.0.0.1:8089"), NGX_DR_VALID_BAD_SCHEME, 0);
    base_url(S("http:/127.0.0.1/"), NGX_DR_VALID_BAD_SCHEME, 0);
    base_url(S("https://"), NGX_DR_VALID_BAD_HOST, 0);
    base_url(S("https:///v1"), NGX_DR_VALID_BAD_HOST, 0);
    base_url(S("https://api.openai.com:/v1"), NGX_DR_VALID_BAD_PORT, 0);
    base_url(S("http://127.0.0.1:0/"), NGX_DR_VALID_BAD_PORT, 0);
    base_url(S("http://127.0.0.1:65536/"), NGX_DR_VALID_BAD_PORT, 0);
    base_url(S("http://127.0.0.1:80x/"), NGX_DR_VALID_BAD_PORT, 0);
    base_url(S("http://127.0.0.1:+80/"), NGX_DR_VALID_BAD_PORT, 0);
    base_url(S("https://[::1/v1"), NGX_DR_VALID_BAD_HOST, 0);
    base_url(S("https://[]/v1"), NGX_DR_VALID_BAD_HOST, 0);
    base_url(S("https://[fe80::1%25eth0]/"), NGX_DR_VALID_BAD_HOST, 0);
    base_url(S("https://api.open ai.com/"), NGX_DR_VALID_BAD_CHAR, 0);
    base_url(S("https://api.openai.com/v1?x=1"), NGX_DR_VALID_BAD_CHAR, 0);
    base_url(S("https://api.openai.com/v1#x"), NGX_DR_VALID_BAD_CHAR, 0);
    base_url(S("https://api.openai.com/v1%zz"), NGX_DR_VALID_BAD_CHAR, 0);
    base_url(S("https://api.openai.com/v1%2"), NGX_DR_VALID_BAD_CHAR, 0);
    base_url(S("https://api.open\xc3\xa4i.com/"), NGX_DR_VALID_BAD_CHAR, 0);
    base_url(S("http://127.0.0.1\0@evil.example/"),
             NGX_DR_VALID_CONTROL, 0);
    base_url(S("http://127.0.0.1\r\nHost: evil/"), NGX_DR_VALID_CONTROL, 0);
}


static void
test_reason(void)
{
    int          code, other, bad;
    const char  *r;

    bad = 0;

    for (code = NGX_DR_VALID_OK; code <= NGX_DR_VALID_NOT_LOCAL; code++) {
        r = ngx_dr_validate_reason(code);

        if (r == NULL || r[0] == '\0' || strlen(r) > 200) {
            diag("code %d has no usable reason", code);
            bad++;
            continue;
        }

        /* a client tells the faults apart by the sentence alone */
        for (other = NGX_DR_VALID_OK; other < code; other++) {
            if (strcmp(r, ngx_dr_validate_reason(other)) == 0) {
                diag("codes %d and %d share a reason", code, other);
                bad++;
            }
        }
    }

    is_int(bad, 0, "every code has its own sentence");

    ok(ngx_dr_validate_reason(-1) != NULL
       && ngx_dr_validate_reason(NGX_DR_VALID_NOT_LOCAL + 1) != NULL
       && ngx_dr_validate_reason(INT_MAX) != NULL,
       "unknown codes still get a sentence");

    ok(strstr(ngx_dr_validate_reason(NGX_DR_VALID_BAD_LABEL), "63") != NULL,
       "the bad label sentence names the 63 character limit");
}


int
main(void)
{
    test_domain_valid();
    test_domain_invalid();
    test_domain_limits();
    test_domain_punycode();
    test_domain_in_place();
    test_uint();
    test_search();
    test_bool();
    test_base_url();
    test_reason();
    test_time_and_link();

    return done_testing();
}


/* the times, days and links of operator input (events, SEO figures) */

static void
test_time_and_link(void)
{
    size_t  i;

    static const struct {
        const char  *s;
        int          code;
    }  times[] = {
        { "2026-01-31T12:00:00Z", NGX_DR_VALID_OK },
        { "2026-01-31T12:00:00.250Z", NGX_DR_VALID_OK },
        { "2024-02-29T23:59:59+14:00", NGX_DR_VALID_OK },
        { "2026-01-31T12:00:00-05:30", NGX_DR_VALID_OK },
        { "2026-01-31 12:00:00Z", NGX_DR_VALID_BAD_CHAR },
        { "2026-01-31T12:00:00", NGX_DR_VALID_BAD_CHAR },
        { "2026-01-31T12:00:00Zjunk", NGX_DR_VALID_BAD_CHAR },
        { "2026-01-31T12:00:00+15:00", NGX_DR_VALID_OUT_OF_RANGE },
        { "2025-02-29T12:00:00Z", NGX_DR_VALID_OUT_OF_RANGE },
        { "2026-13-01T12:00:00Z", NGX_DR_VALID_OUT_OF_RANGE },
        { "2026-01-31T24:00:00Z", NGX_DR_VALID_OUT_OF_RANGE },
        { "1969-12-31T23:59:59Z", NGX_DR_VALID_OUT_OF_RANGE },
        { "2026-01-31T12:00:00Z'; DROP TABLE events;--",
          NGX_DR_VALID_BAD_CHAR },
        { "", NGX_DR_VALID_BAD_CHAR }
    };

    static const struct {
        const char  *s;
        int          code;
    }  links[] = {
        { "https://news.example.com/a?b=c#d", NGX_DR_VALID_OK },
        { "HTTP://news.example.com", NGX_DR_VALID_OK },
        { "http://[2001:db8::1]:8080/x", NGX_DR_VALID_OK },
        { "ftp://news.example.com/", NGX_DR_VALID_BAD_SCHEME },
        { "javascript:alert(1)", NGX_DR_VALID_BAD_SCHEME },
        { "https://", NGX_DR_VALID_BAD_HOST },
        { "https:///path", NGX_DR_VALID_BAD_HOST },
        { "https://user@news.example.com/", NGX_DR_VALID_USERINFO },
        { "https://news example.com/", NGX_DR_VALID_BAD_CHAR },
        { "", NGX_DR_VALID_EMPTY }
    };

    for (i = 0; i < NELTS(times); i++) {
        is_int(ngx_dr_validate_time((const unsigned char *) times[i].s,
                                    strlen(times[i].s)),
               times[i].code, "time \"%s\"", times[i].s);
    }

    is_int(ngx_dr_validate_date((const unsigned char *) "2026-02-28",
           strlen("2026-02-28")),
           NGX_DR_VALID_OK, "a day");
    is_int(ngx_dr_validate_date((const unsigned char *) "2026-02-29",
           strlen("2026-02-29")),
           NGX_DR_VALID_OUT_OF_RANGE, "no 29 February in 2026");
    is_int(ngx_dr_validate_date((const unsigned char *) "2026-02-28T00",
           strlen("2026-02-28T00")),
           NGX_DR_VALID_BAD_CHAR, "a day and more");
    is_int(ngx_dr_validate_date((const unsigned char *) "26-02-28",
           strlen("26-02-28")),
           NGX_DR_VALID_BAD_CHAR, "a year of two digits");

    for (i = 0; i < NELTS(links); i++) {
        is_int(ngx_dr_validate_link((const unsigned char *) links[i].s,
                                    strlen(links[i].s)),
               links[i].code, "link \"%s\"", links[i].s);
    }

    is_int(ngx_dr_validate_link(
               (const unsigned char *) "https://news.example.com/\x01",
               strlen("https://news.example.com/\x01")),
           NGX_DR_VALID_CONTROL, "a control character in a link");
    is_int(ngx_dr_validate_link(
               (const unsigned char *) "https://news.example.com/\xc3\xa4",
               strlen("https://news.example.com/\xc3\xa4")),
           NGX_DR_VALID_BAD_CHAR, "a raw UTF-8 byte in a link");
}

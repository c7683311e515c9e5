
/*
 * Domain Runner: libFuzzer target for ngx_dr_module/ngx_dr_validate.c.
 *
 * Every function sees the whole input, then each '\n'-separated part of
 * it, so that one run covers a domain, a number and a search term at
 * once.  Each call gets its own heap copy of exactly the bytes it may
 * read, and domain output a buffer of exactly len bytes, so AddressSanitizer
 * catches a read or a write one byte too far.  Beyond not crashing:
 *
 *   - a valid domain is at most as long as its input, 1..253 bytes of
 *     [a-z0-9.-], the input lower-cased minus at most one trailing dot,
 *     with every label rule holding; validating it again gives itself;
 *     validating it in place or upper-cased gives the same;
 *   - a domain with no "xn--" label is accepted exactly when a separate,
 *     simpler reading of the rules accepts it;
 *   - search and bool give exactly the codes of separate reference
 *     implementations (search after Unicode table 3-7 byte ranges);
 *   - uint agrees with a reference value and honours min and max;
 *   - a base URL accepted starts with http:// or https://, holds no
 *     space, control, non-ASCII, '?', '#', nor '@' before its path,
 *     and is plain http only when its host is exactly 127.0.0.1, [::1]
 *     or localhost, which is what "local" says;
 *   - every code returned is one of the header's and has a sentence.
 *
 * Build and run (the corpus directory is scratch, never committed):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ingx_dr_module \
 *       t/fuzz/validate_fuzz.c ngx_dr_module/ngx_dr_validate.c \
 *       -o /tmp/validate_fuzz
 *   mkdir -p /tmp/fuzz-corpus
 *   /tmp/validate_fuzz -max_total_time=60 /tmp/fuzz-corpus
 */


#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_dr_validate.h"


/* abort() with a message: libFuzzer saves the input that got here */
#define check(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char *copy(const unsigned char *p, size_t len);
static int lower(int c);
static void check_code(int rc);
static void fuzz_part(const unsigned char *p, size_t len);
static void fuzz_domain(const unsigned char *p, size_t len);
static int ref_domain_ok(const unsigned char *p, size_t len, int *puny);
static void fuzz_uint(const unsigned char *p, size_t len);
static void fuzz_search(const unsigned char *p, size_t len);
static int ref_search(const unsigned char *p, size_t len);
static void fuzz_bool(const unsigned char *p, size_t len);
static void fuzz_base_url(const unsigned char *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  i, start;

    fuzz_part(data, size);

    start = 0;

    for (i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n') {
            continue;
        }

        /* the whole input was done already */
        if (start > 0 || i < size) {
            fuzz_part(data + start, i - start);
        }

        start = i + 1;
    }

    return 0;
}


/* malloc(0) may give NULL: then there is nothing to read anyway */
static unsigned char *
copy(const unsigned char *p, size_t len)
{
    unsigned char  *c;

    c = malloc(len);
    check(c != NULL || len == 0);

    if (len) {
        memcpy(c, p, len);
    }

    return c;
}


static int
lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c | 0x20 : c;
}


static void
check_code(int rc)
{
    const char  *r;

    check(rc >= NGX_DR_VALID_OK && rc <= NGX_DR_VALID_NOT_LOCAL);

    r = ngx_dr_validate_reason(rc);
    check(r != NULL && r[0] != '\0');
    check(strcmp(r, ngx_dr_validate_reason(-1)) != 0);
}


static void
fuzz_part(const unsigned char *p, size_t len)
{
    fuzz_domain(p, len);
    fuzz_uint(p, len);
    fuzz_search(p, len);
    fuzz_bool(p, len);
    fuzz_base_url(p, len);
}


static void
fuzz_domain(const unsigned char *p, size_t len)
{
    int             rc, rc2, puny, dots;
    size_t          i, out_len, len2, label;
    unsigned char  *in, *out, *out2;

    in = copy(p, len);
    out = malloc(len);
    check(out != NULL || len == 0);

    out_len = (size_t) -1;
    rc = ngx_dr_validate_domain(in, len, out, &out_len);
    check_code(rc);
    check(rc != NGX_DR_VALID_NOT_NUMBER && rc != NGX_DR_VALID_OUT_OF_RANGE
          && rc != NGX_DR_VALID_BAD_UTF8);

    /* the input is const: nothing may have written to it */
    check(len == 0 || memcmp(in, p, len) == 0);

    if (rc != NGX_DR_VALID_OK) {
        check(out_len == 0);

        if (ref_domain_ok(p, len, &puny)) {
            /* the reference cannot tell good punycode from bad */
            check(puny);
        }

        free(out);
        free(in);
        return;
    }

    check(ref_domain_ok(p, len, &puny));

    check(out_len <= len);
    check(out_len >= 1 && out_len <= NGX_DR_DOMAIN_MAX);
    check(out_len == len || (out_len == len - 1 && p[len - 1] == '.'));
    check(out[out_len - 1] != '.');

    dots = 0;
    label = 0;

    for (i = 0; i < out_len; i++) {
        check((out[i] >= 'a' && out[i] <= 'z')
              || (out[i] >= '0' && out[i] <= '9')
              || out[i] == '-' || out[i] == '.');
        check(out[i] == lower(p[i]));

        if (out[i] == '.') {
            /* even "xn--" labels: an A-label never ends in a hyphen */
            check(label >= 1 && label <= 63);
            check(out[i - 1] != '-');
            label = 0;
            dots++;
            continue;
        }

        if (label == 0) {
            check(out[i] != '-');
        }

        label++;
    }

    check(dots >= 1);
    check(label >= 2 && label <= 63);
    check(out[out_len - 1] != '-');

    /* idempotent: the result of a valid name is itself a valid name */
    out2 = malloc(out_len);
    check(out2 != NULL);

    len2 = (size_t) -1;
    rc2 = ngx_dr_validate_domain(out, out_len, out2, &len2);
    check(rc2 == NGX_DR_VALID_OK);
    check(len2 == out_len && memcmp(out2, out, out_len) == 0);

    /* in place, upper-cased: in == out is allowed by the header */
    for (i = 0; i < out_len; i++) {
        out2[i] = (out[i] >= 'a' && out[i] <= 'z') ? out[i] - 0x20 : out[i];
    }

    len2 = (size_t) -1;
    rc2 = ngx_dr_validate_domain(out2, out_len, out2, &len2);
    check(rc2 == NGX_DR_VALID_OK);
    check(len2 == out_len && memcmp(out2, out, out_len) == 0);

    free(out2);
    free(out);
    free(in);
}


/*
 * The domain rules read another way: split the lower-cased name on dots
 * and look at each label as a whole.  *puny is set when a label starts
 * with "xn--", whose punycode this reference does not decode; it accepts
 * any such label that is not bare "xn--".
 */

static int
ref_domain_ok(const unsigned char *p, size_t len, int *puny)
{
    char    name[NGX_DR_DOMAIN_MAX + 2], *label, *next, *last;
    size_t  i, n, labels;

    *puny = 0;

    if (len > 0 && p[len - 1] == '.') {
        len--;
    }

    if (len == 0 || len > NGX_DR_DOMAIN_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        name[i] = (char) lower(p[i]);

        if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-.", name[i]) == NULL
            || name[i] == '\0')
        {
            return 0;
        }
    }

    name[len] = '\0';

    labels = 0;
    last = NULL;

    for (label = name; label != NULL; label = next) {
        next = strchr(label, '.');

        if (next != NULL) {
            *next++ = '\0';
        }

        n = strlen(label);

        if (n < 1 || n > 63) {
            return 0;
        }

        if (strncmp(label, "xn--", 4) == 0) {
            *puny = 1;

            if (n == 4) {
                return 0;
            }

        } else if (label[0] == '-' || label[n - 1] == '-'
                   || (n >= 4 && label[2] == '-' && label[3] == '-'))
        {
            return 0;
        }

        labels++;
        last = label;
    }

    if (labels < 2 || strlen(last) < 2
        || strspn(last, "0123456789") == strlen(last))
    {
        return 0;
    }

    return 1;
}


static void
fuzz_uint(const unsigned char *p, size_t len)
{
    int                 rc, digits;
    size_t              i, zeros;
    unsigned char      *in;
    unsigned long       v, w;
    unsigned long long  ref;

    in = copy(p, len);

    v = 4242;
    rc = ngx_dr_validate_uint(in, len, 0, ULONG_MAX, &v);
    check_code(rc);

    for (i = 0; i < len && in[i] >= '0' && in[i] <= '9'; i++) {
        /* void */
    }

    if (len == 0) {
        check(rc == NGX_DR_VALID_EMPTY && v == 4242);
        free(in);
        return;
    }

    if (i < len) {
        check(rc == NGX_DR_VALID_NOT_NUMBER && v == 4242);
        free(in);
        return;
    }

    for (zeros = 0; zeros < len && in[zeros] == '0'; zeros++) {
        /* void */
    }

    digits = (int) (len - zeros);

    if (digits > 19) {
        check(rc == NGX_DR_VALID_OUT_OF_RANGE && v == 4242);
        free(in);
        return;
    }

    /* 19 digits fit in unsigned long long, whatever unsigned long is */
    ref = 0;

    for (i = zeros; i < len; i++) {
        ref = ref * 10 + (unsigned long long) (p[i] - '0');
    }

    if (ref > ULONG_MAX) {
        check(rc == NGX_DR_VALID_OUT_OF_RANGE && v == 4242);
        free(in);
        return;
    }

    check(rc == NGX_DR_VALID_OK && v == ref);

    /* the bounds are inclusive, and one past either end is refused */
    w = 4242;
    check(ngx_dr_validate_uint(in, len, v, v, &w) == NGX_DR_VALID_OK
          && w == v);

    if (v < ULONG_MAX) {
        w = 4242;
        check(ngx_dr_validate_uint(in, len, v + 1, ULONG_MAX, &w)
              == NGX_DR_VALID_OUT_OF_RANGE && w == 4242);
    }

    if (v > 0) {
        w = 4242;
        check(ngx_dr_validate_uint(in, len, 0, v - 1, &w)
              == NGX_DR_VALID_OUT_OF_RANGE && w == 4242);
    }

    free(in);
}


static void
fuzz_search(const unsigned char *p, size_t len)
{
    int             rc;
    unsigned char  *in;

    in = copy(p, len);

    rc = ngx_dr_validate_search(in, len);
    check_code(rc);
    check(rc == ref_search(p, len));

    free(in);
}


/*
 * Well-formed UTF-8 by the byte ranges of Unicode table 3-7, with the
 * same order of faults as the header gives: per code point, ill-formed,
 * then the 101st, then a control.
 */

static int
ref_search(const unsigned char *p, size_t len)
{
    size_t         i, j, n, points;
    unsigned char  c, lo, hi;

    if (len == 0) {
        return NGX_DR_VALID_EMPTY;
    }

    points = 0;

    for (i = 0; i < len; i += n) {
        c = p[i];
        lo = 0x80;
        hi = 0xbf;

        if (c < 0x80) {
            n = 1;

        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 2;

        } else if (c == 0xe0) {
            n = 3;
            lo = 0xa0;

        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            n = 3;

        } else if (c == 0xed) {
            n = 3;
            hi = 0x9f;

        } else if (c == 0xf0) {
            n = 4;
            lo = 0x90;

        } else if (c >= 0xf1 && c <= 0xf3) {
            n = 4;

        } else if (c == 0xf4) {
            n = 4;
            hi = 0x8f;

        } else {
            return NGX_DR_VALID_BAD_UTF8;
        }

        if (n > len - i) {
            return NGX_DR_VALID_BAD_UTF8;
        }

        if (n > 1 && (p[i + 1] < lo || p[i + 1] > hi)) {
            return NGX_DR_VALID_BAD_UTF8;
        }

        for (j = 2; j < n; j++) {
            if (p[i + j] < 0x80 || p[i + j] > 0xbf) {
                return NGX_DR_VALID_BAD_UTF8;
            }
        }

        if (++points > NGX_DR_SEARCH_MAX) {
            return NGX_DR_VALID_TOO_LONG;
        }

        /* C0 and DEL are single bytes; C1 is C2 80 .. C2 9F */
        if ((n == 1 && (c < 0x20 || c == 0x7f))
            || (n == 2 && c == 0xc2 && p[i + 1] <= 0x9f))
        {
            return NGX_DR_VALID_CONTROL;
        }
    }

    return NGX_DR_VALID_OK;
}


static void
fuzz_bool(const unsigned char *p, size_t len)
{
    int             rc, v, expect;
    unsigned char  *in;

    in = copy(p, len);

    if ((len == 4 && memcmp(p, "true", 4) == 0)
        || (len == 1 && p[0] == '1'))
    {
        expect = 1;

    } else if ((len == 5 && memcmp(p, "false", 5) == 0)
               || (len == 1 && p[0] == '0'))
    {
        expect = 0;

    } else {
        expect = -1;
    }

    v = 42;
    rc = ngx_dr_validate_bool(in, len, &v);
    check_code(rc);

    if (expect < 0) {
        check(rc == NGX_DR_VALID_BAD_CHAR && v == 42);

    } else {
        check(rc == NGX_DR_VALID_OK && v == expect);
    }

    free(in);
}


static void
fuzz_base_url(const unsigned char *p, size_t len)
{
    int             rc, again, local, local2, tls;
    size_t          i, start, end, host;
    unsigned char  *in;

    in = copy(p, len);

    local = 42;
    rc = ngx_dr_validate_base_url(in, len, &local);
    check_code(rc);
    check(rc != NGX_DR_VALID_TOO_LONG && rc != NGX_DR_VALID_BAD_LABEL
          && rc != NGX_DR_VALID_NOT_NUMBER && rc != NGX_DR_VALID_BAD_UTF8);

    again = ngx_dr_validate_base_url(in, len, &local2);
    check(again == rc);

    if (rc != NGX_DR_VALID_OK) {
        free(in);
        return;
    }

    check(local2 == local && (local == 0 || local == 1));

    for (i = 0; i < len; i++) {
        check(p[i] > 0x20 && p[i] < 0x7f && p[i] != '?' && p[i] != '#');
    }

    tls = (len >= 8 && lower(p[0]) == 'h' && lower(p[1]) == 't'
           && lower(p[2]) == 't' && lower(p[3]) == 'p'
           && lower(p[4]) == 's' && memcmp(p + 5, "://", 3) == 0);
    check(tls || (len >= 7 && lower(p[0]) == 'h' && lower(p[1]) == 't'
                  && lower(p[2]) == 't' && lower(p[3]) == 'p'
                  && memcmp(p + 4, "://", 3) == 0));

    start = tls ? 8 : 7;

    for (end = start; end < len && p[end] != '/'; end++) {
        check(p[end] != '@');
    }

    /* the host: up to the port's ':' (after ']' for an IPv6 address) */
    host = end;

    for (i = end; i > start; i--) {
        if (p[i - 1] == ']') {
            break;
        }

        if (p[i - 1] == ':') {
            host = i - 1;
            break;
        }
    }

    check(host > start);

    local2 = (host - start == 9 && memcmp(p + start, "127.0.0.1", 9) == 0)
             || (host - start == 5 && memcmp(p + start, "[::1]", 5) == 0)
             || (host - start == 9 && lower(p[start]) == 'l'
                 && lower(p[start + 1]) == 'o' && lower(p[start + 2]) == 'c'
                 && lower(p[start + 3]) == 'a' && lower(p[start + 4]) == 'l'
                 && lower(p[start + 5]) == 'h' && lower(p[start + 6]) == 'o'
                 && lower(p[start + 7]) == 's' && lower(p[start + 8]) == 't');

    check(local == local2);
    check(tls || local);

    free(in);
}

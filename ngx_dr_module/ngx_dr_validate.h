
/*
 * Domain Runner: validation of request input before any query (SPEC
 * sections 5 and 9): domain names in paths, numbers, search terms and
 * booleans in query strings; and of the providers' base URLs, read from
 * the configuration.
 *
 * Pure C99 over libc: no nginx, no libpq, no allocation, no global
 * mutable state, so unit tests and fuzzers link it directly and any
 * worker may call it.  Every function reads exactly len bytes of its
 * input and never needs it NUL-terminated.
 */


#ifndef _NGX_DR_VALIDATE_H_INCLUDED_
#define _NGX_DR_VALIDATE_H_INCLUDED_


#include <stddef.h>


#define NGX_DR_DOMAIN_MAX      253
#define NGX_DR_SEARCH_MAX      100   /* characters (code points) */
#define NGX_DR_LINK_MAX        2000

/* result codes; 0 is success */
#define NGX_DR_VALID_OK            0
#define NGX_DR_VALID_EMPTY         1
#define NGX_DR_VALID_TOO_LONG      2
#define NGX_DR_VALID_BAD_CHAR      3   /* a character not allowed */
#define NGX_DR_VALID_BAD_LABEL     4   /* empty label, label > 63, or a
                                          hyphen at a label's edge */
#define NGX_DR_VALID_SINGLE_LABEL  5   /* "localhost": no dot */
#define NGX_DR_VALID_BAD_TLD       6   /* all-numeric or 1-character
                                          top-level label, e.g. an IPv4
                                          address */
#define NGX_DR_VALID_BAD_PUNYCODE  7   /* "xn--" label that is not valid
                                          punycode */
#define NGX_DR_VALID_NOT_NUMBER    8
#define NGX_DR_VALID_OUT_OF_RANGE  9
#define NGX_DR_VALID_BAD_UTF8      10
#define NGX_DR_VALID_CONTROL       11  /* control character */
#define NGX_DR_VALID_BAD_SCHEME    12  /* a URL neither https:// nor
                                          http:// */
#define NGX_DR_VALID_USERINFO      13  /* a URL with "user@" before its
                                          host */
#define NGX_DR_VALID_BAD_HOST      14  /* a URL's host empty or malformed */
#define NGX_DR_VALID_BAD_PORT      15  /* a URL's port not 1..65535 */
#define NGX_DR_VALID_NOT_LOCAL     16  /* plain http to another machine */


/* Lower-cases ASCII, strips ONE trailing dot, and checks a domain name:
 * total length 1..253 (after stripping), labels 1..63 of [a-z0-9-], no
 * hyphen at a label's start or end, at least two labels, top-level label
 * not all digits and at least 2 characters, "xn--" labels must decode as
 * punycode (RFC 3492) to at least one code point; a label with "--" at
 * positions 3-4 that is not "xn--" is rejected as BAD_LABEL (RFC 5891
 * reserves it).  Non-ASCII input (raw UTF-8 IDN) is BAD_CHAR: clients send
 * IDNs as punycode.  out must hold len bytes; *out_len gets the result's
 * length.  Returns a code above.
 *
 * A C0 control or DEL anywhere is CONTROL rather than BAD_CHAR.  An
 * "xn--" label must hold at least one non-ASCII code point (an A-label,
 * RFC 5890), so "xn--zz-", plain "zz" in RFC 3492 terms, is BAD_PUNYCODE.
 * in and out may be the same buffer.  On failure *out_len is 0 and out
 * holds nothing useful. */
int ngx_dr_validate_domain(const unsigned char *in, size_t len,
    unsigned char *out, size_t *out_len);

/* Parses a decimal unsigned integer: digits only (no sign, no spaces, no
 * leading '+'; leading zeros allowed), no overflow (anything longer than
 * 19 digits or above max is OUT_OF_RANGE), min <= value <= max.
 *
 * An empty string is EMPTY; leading zeros do not count towards the 19
 * digits.  *out is set only on success. */
int ngx_dr_validate_uint(const unsigned char *s, size_t len,
    unsigned long min, unsigned long max, unsigned long *out);

/* A free-text search term, already percent-decoded: valid UTF-8 (no
 * overlongs, no surrogates, nothing above U+10FFFF), no control characters
 * (C0, DEL, C1), 1..NGX_DR_SEARCH_MAX code points.  Returns a code.
 *
 * The first fault from the start wins: a term whose 101st code point
 * comes before a bad byte is TOO_LONG. */
int ngx_dr_validate_search(const unsigned char *s, size_t len);

/* A boolean query value: "true", "false", "1", "0" (lower-case only);
 * returns OK and sets *out, or BAD_CHAR. */
int ngx_dr_validate_bool(const unsigned char *s, size_t len, int *out);

/* A provider's base URL, as libcurl will read it: "https://" or "http://"
 * (any case), a host, an optional port 1..65535, and nothing else or a
 * path from '/' of RFC 3986 path characters (percent escapes included).
 * The host is a name of [A-Za-z0-9._-] or an IPv6 address in brackets
 * ([0-9A-Fa-f:.]).  No user information ("user@", or any '@' before the
 * path), no query, no fragment, no space, control or non-ASCII byte.
 * Plain http is for this machine only: its host must be exactly
 * 127.0.0.1, [::1] or localhost (any case), or the URL is NOT_LOCAL.
 * Returns OK and sets *local (1 for one of those three hosts) or a code:
 * EMPTY, CONTROL, BAD_CHAR, BAD_SCHEME, USERINFO, BAD_HOST, BAD_PORT,
 * NOT_LOCAL. */
int ngx_dr_validate_base_url(const unsigned char *s, size_t len,
    int *local);

/* A time as "2026-01-31T12:00:00Z": a real day from 1970 on, hours,
 * minutes and seconds, an optional fraction, then "Z" or an offset from
 * -12:00 to +14:00 ("+02:00").  Returns OK, BAD_CHAR for another shape or
 * OUT_OF_RANGE for a day, time or offset that does not exist. */
int ngx_dr_validate_time(const unsigned char *s, size_t len);

/* A day as "2026-01-31" from 1970 on: OK, BAD_CHAR or OUT_OF_RANGE. */
int ngx_dr_validate_date(const unsigned char *s, size_t len);

/* A name or a title an operator gives, as JSON text (valid UTF-8): 1 to
 * max bytes without a control character (C0, DEL, C1).  Returns OK,
 * EMPTY, TOO_LONG or CONTROL. */
int ngx_dr_validate_text(const unsigned char *s, size_t len, size_t max);

/* A link an operator gives (an event's source): "https://" or "http://"
 * in any case, a host of [A-Za-z0-9.:[]-], then anything printable ASCII
 * from '/', '?' or '#' on; at most NGX_DR_LINK_MAX bytes.  Unlike a
 * provider's base URL it is only stored and shown, never fetched, so
 * plain http to anywhere and a query are fine.  Returns OK or EMPTY,
 * TOO_LONG, CONTROL, BAD_CHAR, BAD_SCHEME, USERINFO, BAD_HOST. */
int ngx_dr_validate_link(const unsigned char *s, size_t len);

/* A short English sentence for an error message, e.g. "a label is longer
 * than 63 characters", for each code. Never NULL. */
const char *ngx_dr_validate_reason(int code);


#endif /* _NGX_DR_VALIDATE_H_INCLUDED_ */

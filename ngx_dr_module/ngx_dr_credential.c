
/*
 * Domain Runner: the accounts' credentials (ngx_dr_credential.h).
 *
 * Only libc, libcrypto and jansson.  Nothing here logs or keeps what it
 * is given: the callers clear passwords and tokens after use.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <jansson.h>

#include "ngx_dr_validate.h"
#include "ngx_dr_credential.h"


/* scrypt's memory: 128 r N bytes, and some room */
#define NGX_DR_SCRYPT_MAXMEM  (64 * 1024 * 1024)

/* {"alg":"HS256","typ":"JWT"} */
static const char  ngx_dr_jwt_header[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

static const char  ngx_dr_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


static int ngx_dr_jwt_claims(const unsigned char *json, size_t len,
    ngx_dr_jwt_claims_t *claims);


const char *
ngx_dr_credential_email(const unsigned char *s, size_t len)
{
    size_t          i, at, dlen;
    unsigned char   c, domain[NGX_DR_EMAIL_MAX];

    if (len == 0) {
        return "an e-mail address is needed";
    }

    if (len > NGX_DR_EMAIL_MAX) {
        return "an e-mail address is at most 254 characters";
    }

    at = len;

    for (i = 0; i < len; i++) {
        if (s[i] == '@') {
            if (at != len) {
                return "an e-mail address has one @";
            }

            at = i;
        }
    }

    if (at == len) {
        return "an e-mail address has an @";
    }

    if (at == 0 || at > 64) {
        return "the part before the @ is 1 to 64 characters";
    }

    /* the local part: RFC 5322's dot-atom, no quoted strings */

    for (i = 0; i < at; i++) {
        c = s[i];

        if (c == '.') {
            if (i == 0 || i == at - 1 || s[i - 1] == '.') {
                return "the part before the @ has a misplaced dot";
            }

            continue;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9')
              || (c != 0 && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL)))
        {
            return "the part before the @ has a character not allowed";
        }
    }

    /* "a@example.com." is the mailbox of "a@example.com": one account */
    if (ngx_dr_validate_domain(s + at + 1, len - at - 1, domain, &dlen)
        != NGX_DR_VALID_OK
        || s[len - 1] == '.')
    {
        return "the part after the @ is not a domain name";
    }

    return NULL;
}


const char *
ngx_dr_credential_password(const unsigned char *s, size_t len)
{
    size_t  i;
    int     lower, upper, digit, other;

    if (len < NGX_DR_PASSWORD_MIN) {
        return "a password has at least 8 characters";
    }

    if (len > NGX_DR_PASSWORD_MAX) {
        return "a password has at most 128 bytes";
    }

    lower = upper = digit = other = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            return "a password has no control characters";
        }

        if (s[i] >= 'a' && s[i] <= 'z') {
            lower = 1;

        } else if (s[i] >= 'A' && s[i] <= 'Z') {
            upper = 1;

        } else if (s[i] >= '0' && s[i] <= '9') {
            digit = 1;

        } else {
            other = 1;
        }
    }

    if (lower + upper + digit + other < 2) {
        return "a password mixes at least two of lower-case letters, "
               "upper-case letters, digits and other characters";
    }

    return NULL;
}


size_t
ngx_dr_b64url_encode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t          i;
    unsigned char  *d;

    d = dst;

    for (i = 0; i + 2 < len; i += 3) {
        *d++ = ngx_dr_b64url[src[i] >> 2];
        *d++ = ngx_dr_b64url[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        *d++ = ngx_dr_b64url[((src[i + 1] & 0x0f) << 2) | (src[i + 2] >> 6)];
        *d++ = ngx_dr_b64url[src[i + 2] & 0x3f];
    }

    if (len - i == 1) {
        *d++ = ngx_dr_b64url[src[i] >> 2];
        *d++ = ngx_dr_b64url[(src[i] & 0x03) << 4];

    } else if (len - i == 2) {
        *d++ = ngx_dr_b64url[src[i] >> 2];
        *d++ = ngx_dr_b64url[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        *d++ = ngx_dr_b64url[(src[i + 1] & 0x0f) << 2];
    }

    return d - dst;
}


long
ngx_dr_b64url_decode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t          i, n;
    const char     *p;
    unsigned long   acc;
    unsigned char  *d;

    if (len % 4 == 1) {
        return -1;
    }

    d = dst;
    acc = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] == '\0'
            || (p = strchr(ngx_dr_b64url, src[i])) == NULL)
        {
            return -1;
        }

        acc = (acc << 6) | (unsigned long) (p - ngx_dr_b64url);
        n += 6;

        if (n >= 8) {
            n -= 8;
            *d++ = (unsigned char) (acc >> n);
            acc &= (1UL << n) - 1;
        }
    }

    /* the bits left over are zero in a canonical encoding */
    if (acc != 0) {
        return -1;
    }

    return d - dst;
}


int
ngx_dr_password_hash(const unsigned char *pw, size_t len,
    const unsigned char *salt, char *out)
{
    int            n;
    unsigned char  hash[NGX_DR_SCRYPT_LEN];
    unsigned char  s64[32], h64[48];
    size_t         sl, hl;

    if (EVP_PBE_scrypt((const char *) pw, len, salt, NGX_DR_SCRYPT_SALT,
                       (uint64_t) 1 << NGX_DR_SCRYPT_LOG_N,
                       NGX_DR_SCRYPT_R, NGX_DR_SCRYPT_P,
                       NGX_DR_SCRYPT_MAXMEM, hash, sizeof(hash))
        != 1)
    {
        return -1;
    }

    sl = ngx_dr_b64url_encode(s64, salt, NGX_DR_SCRYPT_SALT);
    hl = ngx_dr_b64url_encode(h64, hash, sizeof(hash));
    OPENSSL_cleanse(hash, sizeof(hash));

    n = snprintf(out, NGX_DR_PASSWORD_HASH_MAX, "scrypt$%d$%d$%d$%.*s$%.*s",
                 NGX_DR_SCRYPT_LOG_N, NGX_DR_SCRYPT_R, NGX_DR_SCRYPT_P,
                 (int) sl, s64, (int) hl, h64);

    return (n > 0 && n < NGX_DR_PASSWORD_HASH_MAX) ? 0 : -1;
}


int
ngx_dr_password_verify(const unsigned char *pw, size_t len,
    const char *stored)
{
    int            logn, r, p, ok;
    long           sl, hl;
    const char    *s, *h;
    unsigned char  salt[96], want[96], got[96];

    /* the parameters a hash was made with are its own: they may grow */

    if (sscanf(stored, "scrypt$%d$%d$%d$", &logn, &r, &p) != 3
        || logn < 10 || logn > 20 || r < 1 || r > 32 || p < 1 || p > 16)
    {
        return -1;
    }

    s = strchr(stored + 7, '$');
    s = s ? strchr(s + 1, '$') : NULL;
    s = s ? strchr(s + 1, '$') : NULL;
    h = s ? strchr(s + 1, '$') : NULL;

    if (h == NULL || h - s - 1 > 120 || strlen(h + 1) > 120) {
        return -1;
    }

    sl = ngx_dr_b64url_decode(salt, (const unsigned char *) s + 1,
                              h - s - 1);
    hl = ngx_dr_b64url_decode(want, (const unsigned char *) h + 1,
                              strlen(h + 1));

    if (sl < 4 || hl < 16) {
        return -1;
    }

    if ((128 * (uint64_t) r << logn) > NGX_DR_SCRYPT_MAXMEM / 2) {
        return -1;
    }

    if (EVP_PBE_scrypt((const char *) pw, len, salt, sl,
                       (uint64_t) 1 << logn, r, p, NGX_DR_SCRYPT_MAXMEM,
                       got, hl)
        != 1)
    {
        return -1;
    }

    ok = CRYPTO_memcmp(got, want, hl) == 0;
    OPENSSL_cleanse(got, sizeof(got));

    return ok;
}


size_t
ngx_dr_jwt_encode(unsigned char *out, const unsigned char *key,
    size_t key_len, const ngx_dr_jwt_claims_t *claims)
{
    int            n;
    char           payload[256];
    size_t         len;
    unsigned int   mdlen;
    unsigned char  md[32];

    n = snprintf(payload, sizeof(payload),
                 "{\"sub\":\"%lld\",\"kp\":\"%s\",\"gen\":%lld,"
                 "\"iat\":%lld,\"exp\":%lld}",
                 (long long) claims->sub, claims->kp, (long long) claims->gen,
                 (long long) claims->iat, (long long) claims->exp);

    if (n <= 0 || n >= (int) sizeof(payload)) {
        return 0;
    }

    len = sizeof(ngx_dr_jwt_header) - 1;
    memcpy(out, ngx_dr_jwt_header, len);
    out[len++] = '.';
    len += ngx_dr_b64url_encode(out + len, (unsigned char *) payload, n);

    if (HMAC(EVP_sha256(), key, (int) key_len, out, len, md, &mdlen) == NULL
        || mdlen != sizeof(md))
    {
        return 0;
    }

    out[len++] = '.';
    len += ngx_dr_b64url_encode(out + len, md, sizeof(md));

    return len;
}


int
ngx_dr_jwt_decode(const unsigned char *token, size_t len,
    const unsigned char *key, size_t key_len, int64_t now,
    ngx_dr_jwt_claims_t *claims)
{
    long                  n;
    size_t                i, dot1, dot2;
    json_t               *header, *alg;
    unsigned int          mdlen;
    unsigned char         md[32], sig[48], buf[NGX_DR_JWT_MAX];
    const unsigned char  *p;

    if (len == 0 || len > NGX_DR_JWT_MAX) {
        return NGX_DR_JWT_MALFORMED;
    }

    dot1 = dot2 = 0;

    for (i = 0; i < len; i++) {
        if (token[i] != '.') {
            continue;
        }

        if (dot1 == 0) {
            dot1 = i;

        } else if (dot2 == 0) {
            dot2 = i;

        } else {
            return NGX_DR_JWT_MALFORMED;
        }
    }

    if (dot1 == 0 || dot2 == 0 || dot2 == dot1 + 1 || dot2 == len - 1) {
        return NGX_DR_JWT_MALFORMED;
    }

    /* the header: HS256 only, never "none" nor another algorithm */

    n = ngx_dr_b64url_decode(buf, token, dot1);
    if (n <= 0) {
        return NGX_DR_JWT_MALFORMED;
    }

    header = json_loadb((const char *) buf, n, JSON_REJECT_DUPLICATES, NULL);
    alg = json_object_get(header, "alg");

    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
    {
        json_decref(header);
        return NGX_DR_JWT_MALFORMED;
    }

    json_decref(header);

    /* the signature, compared in constant time */

    n = ngx_dr_b64url_decode(sig, token + dot2 + 1, len - dot2 - 1 > 44
                                                    ? 0 : len - dot2 - 1);

    if (n != (long) sizeof(md)
        || HMAC(EVP_sha256(), key, (int) key_len, token, dot2, md, &mdlen)
           == NULL
        || mdlen != sizeof(md))
    {
        return NGX_DR_JWT_BAD_SIGNATURE;
    }

    if (CRYPTO_memcmp(md, sig, sizeof(md)) != 0) {
        return NGX_DR_JWT_BAD_SIGNATURE;
    }

    p = token + dot1 + 1;
    n = ngx_dr_b64url_decode(buf, p, dot2 - dot1 - 1);

    if (n <= 0 || ngx_dr_jwt_claims(buf, n, claims) != 0) {
        return NGX_DR_JWT_MALFORMED;
    }

    if (claims->exp <= now) {
        return NGX_DR_JWT_EXPIRED;
    }

    return NGX_DR_JWT_OK;
}


static int
ngx_dr_jwt_claims(const unsigned char *json, size_t len,
    ngx_dr_jwt_claims_t *claims)
{
    int          rc;
    char        *end;
    size_t       i, n;
    json_t      *body, *sub, *kp, *gen, *iat, *exp;
    const char  *s;

    body = json_loadb((const char *) json, len, JSON_REJECT_DUPLICATES,
                      NULL);

    sub = json_object_get(body, "sub");
    kp = json_object_get(body, "kp");
    gen = json_object_get(body, "gen");
    iat = json_object_get(body, "iat");
    exp = json_object_get(body, "exp");

    rc = -1;

    if (!json_is_string(sub) || !json_is_string(kp)
        || !json_is_integer(gen) || !json_is_integer(exp)
        || (iat && !json_is_integer(iat)))
    {
        goto done;
    }

    s = json_string_value(sub);

    if (s[0] < '1' || s[0] > '9' || strlen(s) > 18) {
        goto done;
    }

    claims->sub = strtoll(s, &end, 10);

    if (*end != '\0') {
        goto done;
    }

    s = json_string_value(kp);
    n = json_string_length(kp);

    if (n == 0 || n > NGX_DR_JWT_PREFIX_MAX) {
        goto done;
    }

    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
        {
            goto done;
        }
    }

    memcpy(claims->kp, s, n);
    claims->kp[n] = '\0';
    claims->gen = json_integer_value(gen);
    claims->iat = iat ? json_integer_value(iat) : 0;
    claims->exp = json_integer_value(exp);
    rc = 0;

done:

    json_decref(body);

    return rc;
}

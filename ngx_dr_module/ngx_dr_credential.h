
/*
 * Domain Runner: the accounts' credentials: e-mail addresses, password
 * strength, scrypt password hashes, base64url and the access tokens
 * (JWT, HS256).
 *
 * Pure C99 over libc, OpenSSL's libcrypto and jansson: no nginx, no
 * libpq, no global mutable state, so unit tests link it directly and any
 * thread may call it.  Every function reads exactly len bytes of its
 * input and never needs it NUL-terminated.
 */


#ifndef _NGX_DR_CREDENTIAL_H_INCLUDED_
#define _NGX_DR_CREDENTIAL_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_DR_EMAIL_MAX          254
#define NGX_DR_PASSWORD_MIN       8
#define NGX_DR_PASSWORD_MAX       128     /* bytes */

/*
 * scrypt: N = 2^14, r = 8, p = 1 (16 MiB and a few tens of ms a hash),
 * a 16-byte random salt and a 32-byte hash, stored as
 * "scrypt$14$8$1$<salt>$<hash>" (base64url)
 */
#define NGX_DR_SCRYPT_LOG_N       14
#define NGX_DR_SCRYPT_R           8
#define NGX_DR_SCRYPT_P           1
#define NGX_DR_SCRYPT_SALT        16
#define NGX_DR_SCRYPT_LEN         32
#define NGX_DR_PASSWORD_HASH_MAX  96      /* the stored form, with NUL */

#define NGX_DR_JWT_MAX            1024    /* a token's length at most */
#define NGX_DR_JWT_PREFIX_MAX     16

/* the outcome of ngx_dr_jwt_decode() */
#define NGX_DR_JWT_OK             0
#define NGX_DR_JWT_MALFORMED      1
#define NGX_DR_JWT_BAD_SIGNATURE  2
#define NGX_DR_JWT_EXPIRED        3


/* what an access token says: its account, the key it acts as, the
 * account's generation when issued (a password change bumps it) */
typedef struct {
    int64_t      sub;                      /* the account's id */
    int64_t      gen;
    int64_t      iat;
    int64_t      exp;
    char         kp[NGX_DR_JWT_PREFIX_MAX + 1];  /* the key's prefix */
} ngx_dr_jwt_claims_t;


/* NULL when s is an address such as name@example.com, else why not */
const char *ngx_dr_credential_email(const unsigned char *s, size_t len);

/* NULL when the password is strong enough: 8 to 128 bytes of at least
 * two classes of lower-case, upper-case, digits and others; else why */
const char *ngx_dr_credential_password(const unsigned char *s, size_t len);

/* base64url without padding: encode writes 4 * ceil(len / 3) bytes at
 * most and returns how many; decode returns the length, or -1 */
size_t ngx_dr_b64url_encode(unsigned char *dst, const unsigned char *src,
    size_t len);
long ngx_dr_b64url_decode(unsigned char *dst, const unsigned char *src,
    size_t len);

/* the stored form of a password's scrypt hash under salt (out holds
 * NGX_DR_PASSWORD_HASH_MAX bytes): 0, or -1 */
int ngx_dr_password_hash(const unsigned char *pw, size_t len,
    const unsigned char *salt, char *out);

/* 1: the password matches the stored form, 0: it does not, -1: the
 * stored form is not one this file makes; compared in constant time */
int ngx_dr_password_verify(const unsigned char *pw, size_t len,
    const char *stored);

/* a token of the claims signed with key (out holds NGX_DR_JWT_MAX
 * bytes): its length, or 0 */
size_t ngx_dr_jwt_encode(unsigned char *out, const unsigned char *key,
    size_t key_len, const ngx_dr_jwt_claims_t *claims);

/* checks a token's form, algorithm (HS256 only), signature and expiry at
 * now: NGX_DR_JWT_OK with its claims, or why not */
int ngx_dr_jwt_decode(const unsigned char *token, size_t len,
    const unsigned char *key, size_t key_len, int64_t now,
    ngx_dr_jwt_claims_t *claims);


#endif /* _NGX_DR_CREDENTIAL_H_INCLUDED_ */

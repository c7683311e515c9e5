
/*
 * Domain Runner: unit tests of ngx_dr_module/ngx_dr_credential.c, in TAP.
 *
 * Base64url against RFC 4648's vectors, scrypt against RFC 7914's, the
 * HS256 signature against a token signed by another implementation, and
 * the checks of e-mail addresses and passwords with what people really
 * type.  It also reports (never asserts) what one hash of the module's
 * parameters costs on this machine.
 *
 * Build and run (t/24-credential-unit.t runs the binary under prove):
 *
 *   make unit && build/unit/credential
 */


/* clock_gettime() under -std=c99 */
#define _POSIX_C_SOURCE  200809L

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ngx_dr_credential.h"
#include "tap.h"


#define S(lit)  (const unsigned char *) (lit), (sizeof(lit) - 1)


static void
test_base64url(void)
{
    size_t          i, n;
    long            m;
    unsigned char   out[64], back[64];

    static const char  *plain[] = {
        "", "f", "fo", "foo", "foob", "fooba", "foobar"
    };
    static const char  *coded[] = {
        "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"
    };

    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        n = ngx_dr_b64url_encode(out, (const unsigned char *) plain[i],
                                 strlen(plain[i]));
        out[n] = '\0';
        is_str((char *) out, coded[i], "base64url of \"%s\" (RFC 4648)",
               plain[i]);

        m = ngx_dr_b64url_decode(back, out, n);
        ok(m == (long) strlen(plain[i])
           && memcmp(back, plain[i], m) == 0,
           "and back to \"%s\"", plain[i]);
    }

    n = ngx_dr_b64url_encode(out, (const unsigned char *) "\xfb\xff", 2);
    out[n] = '\0';
    is_str((char *) out, "-_8", "the URL's alphabet: - and _, no padding");

    is_int(ngx_dr_b64url_decode(back, S("Zm9v=")), -1, "padding refused");
    is_int(ngx_dr_b64url_decode(back, S("Zm+v")), -1, "'+' refused");
    is_int(ngx_dr_b64url_decode(back, S("Zm9vY")), -1,
           "a length of 4n + 1 refused");
    is_int(ngx_dr_b64url_decode(back, S("Zh")), -1,
           "left-over bits that are not zero refused");
    is_int(ngx_dr_b64url_decode(back, S("Zm\0v")), -1, "a NUL refused");
}


static void
test_email(void)
{
    size_t  i;

    static const char  *good[] = {
        "ada@example.com", "Ada.Lovelace@Example.COM",
        "a+tag@mail.example.co.uk", "o'brien@example.ie",
        "x@xn--bcher-kva.example"
    };
    static const char  *bad[] = {
        "", "ada", "@example.com", "ada@", "ada@@example.com",
        "a@b@example.com", "ada@localhost", ".ada@example.com",
        "ada.@example.com", "a..da@example.com", "ada lovelace@example.com",
        "ada@exa mple.com", "ada@-example.com", "ada@127.0.0.1",
        "\"ada\"@example.com", "ada\x01@example.com", "ada@example.com."
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(ngx_dr_credential_email((const unsigned char *) good[i],
                                   strlen(good[i]))
           == NULL, "an address: %s", good[i]);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(ngx_dr_credential_email((const unsigned char *) bad[i],
                                   strlen(bad[i]))
           != NULL, "not an address: [%s]", bad[i]);
    }

    {
        char  local[80], domain[300];

        memset(local, 'a', 65);
        strcpy(local + 65, "@example.com");
        ok(ngx_dr_credential_email((unsigned char *) local, strlen(local))
           != NULL, "65 characters before the @: refused");

        memset(domain, 'b', 250);
        memcpy(domain, "a@", 2);
        strcpy(domain + 250, ".com");
        ok(ngx_dr_credential_email((unsigned char *) domain,
                                   strlen(domain))
           != NULL, "254 characters and more: refused");
    }
}


static void
test_password(void)
{
    size_t  i;
    char    long_one[200];

    static const char  *good[] = {
        "FAKE-pass", "fakepass1", "FAKEPASS1", "fake pass", "Fakepassword",
        "\xc3\xa9t\xc3\xa9-2026"
    };
    static const char  *bad[] = {
        "", "Fak3", "Fake-p1", "fakepassword", "FAKEPASSWORD", "12345678",
        "!!!!!!!!", "fake\tpass1"
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(ngx_dr_credential_password((const unsigned char *) good[i],
                                      strlen(good[i]))
           == NULL, "strong enough: %s", good[i]);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(ngx_dr_credential_password((const unsigned char *) bad[i],
                                      strlen(bad[i]))
           != NULL, "too weak: [%s]", bad[i]);
    }

    memset(long_one, 'a', sizeof(long_one));
    long_one[0] = '1';
    ok(ngx_dr_credential_password((unsigned char *) long_one, 128) == NULL,
       "128 bytes: good");
    ok(ngx_dr_credential_password((unsigned char *) long_one, 129) != NULL,
       "129 bytes: refused");
}


static void
test_scrypt(void)
{
    int             i;
    char            stored[NGX_DR_PASSWORD_HASH_MAX];
    char            other[NGX_DR_PASSWORD_HASH_MAX];
    double          ms;
    unsigned char   salt[NGX_DR_SCRYPT_SALT];
    struct timespec t0, t1;

    /*
     * RFC 7914 section 12: P "password", S "NaCl", N 1024, r 8, p 16,
     * its 64 bytes in the stored form
     */
    ok(ngx_dr_password_verify(S("password"),
           "scrypt$10$8$16$TmFDbA$"
           "_bq-HJ00cgB4VucZDQHp_nxq18vII3gw53N2Y0s3MWIur"
           "zDZLiKjiG_xCSedmDDaxyevuUqD7m2DYMvfoswGQA")
       == 1, "RFC 7914's vector verifies");
    ok(ngx_dr_password_verify(S("passwore"),
           "scrypt$10$8$16$TmFDbA$"
           "_bq-HJ00cgB4VucZDQHp_nxq18vII3gw53N2Y0s3MWIur"
           "zDZLiKjiG_xCSedmDDaxyevuUqD7m2DYMvfoswGQA")
       == 0, "another password does not");

    memset(salt, 7, sizeof(salt));

    clock_gettime(CLOCK_MONOTONIC, &t0);
    is_int(ngx_dr_password_hash(S("FAKE-pass-w0rd"), salt, stored), 0,
           "a hash of the module's parameters");
    clock_gettime(CLOCK_MONOTONIC, &t1);

    ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    diag("one scrypt hash (N=2^%d, r=%d, p=%d) took %.1f ms here",
         NGX_DR_SCRYPT_LOG_N, NGX_DR_SCRYPT_R, NGX_DR_SCRYPT_P, ms);

    ok(strncmp(stored, "scrypt$14$8$1$", 14) == 0
       && strlen(stored) == 14 + 22 + 1 + 43,
       "stored as scrypt$14$8$1$<salt>$<hash>");
    is_int(ngx_dr_password_verify(S("FAKE-pass-w0rd"), stored), 1,
           "the password verifies");
    is_int(ngx_dr_password_verify(S("FAKE-pass-w0rD"), stored), 0,
           "one letter off does not");
    is_int(ngx_dr_password_verify(S(""), stored), 0, "nor nothing");

    salt[0] = 8;
    ngx_dr_password_hash(S("FAKE-pass-w0rd"), salt, other);
    ok(strcmp(stored, other) != 0, "another salt, another hash");

    static const char  *broken[] = {
        "", "scrypt$", "bcrypt$10$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$9$8$1$AAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$30$8$1$AAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$14$8$1$AAAAAA",
        "scrypt$14$8$1$AA=A$AAAAAAAAAAAAAAAAAAAAAA",
    };

    for (i = 0; i < (int) (sizeof(broken) / sizeof(broken[0])); i++) {
        is_int(ngx_dr_password_verify(S("x"), broken[i]), -1,
               "not a stored form: [%s]", broken[i]);
    }
}


static void
test_jwt(void)
{
    size_t               n;
    unsigned char        token[NGX_DR_JWT_MAX + 8], forged[NGX_DR_JWT_MAX];
    ngx_dr_jwt_claims_t  c, got;

    /*
     * jwt.io's example claims signed by Python's hmac module (another
     * implementation of the encoding) under "FAKE-hs256-vector-key"
     */
    static const char  example[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2"
        "MjM5MDIyfQ.yYRLfgq7X4bGSUx0KcNgfrR_A3KMnqPbCoXuFBJRRTU";

    is_int(ngx_dr_jwt_decode(S(example), S("FAKE-hs256-vector-key"), 0,
                             &got),
           NGX_DR_JWT_MALFORMED,
           "a token signed elsewhere: the signature holds (its claims are "
           "not ours)");
    is_int(ngx_dr_jwt_decode(S(example), S("FAKE-hs256-vector-keY"), 0,
                             &got),
           NGX_DR_JWT_BAD_SIGNATURE, "under another secret it does not");

    memset(&c, 0, sizeof(c));
    c.sub = 42;
    c.gen = 3;
    c.iat = 1700000000;
    c.exp = 1700003600;
    strcpy(c.kp, "abcd1234");

    n = ngx_dr_jwt_encode(token, S("FAKE-secret"), &c);
    ok(n > 0, "a token made");
    token[n] = '\0';
    ok(strncmp((char *) token, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37)
       == 0, "with the header {alg: HS256, typ: JWT}");

    memset(&got, 0, sizeof(got));
    is_int(ngx_dr_jwt_decode(token, n, S("FAKE-secret"), 1700000001, &got),
           NGX_DR_JWT_OK, "it decodes");
    ok(got.sub == 42 && got.gen == 3 && got.exp == 1700003600
       && strcmp(got.kp, "abcd1234") == 0, "to the same claims");

    is_int(ngx_dr_jwt_decode(token, n, S("FAKE-secret"), 1700003600, &got),
           NGX_DR_JWT_EXPIRED, "expired at exp");
    is_int(ngx_dr_jwt_decode(token, n, S("FAKE-secreT"), 1700000001, &got),
           NGX_DR_JWT_BAD_SIGNATURE, "another secret: a bad signature");

    memcpy(forged, token, n);
    forged[n - 1] ^= 1;
    ok(ngx_dr_jwt_decode(forged, n, S("FAKE-secret"), 1700000001, &got)
       != NGX_DR_JWT_OK, "a signature changed by a bit");

    /* alg none, with the same claims and no signature */
    n = snprintf((char *) forged, sizeof(forged), "%s.%s.",
                 "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
                 strchr((char *) token, '.') + 1);
    *(strrchr((char *) forged, '.') + 1) = '\0';
    is_int(ngx_dr_jwt_decode(forged, strlen((char *) forged),
                             S("FAKE-secret"), 1700000001, &got),
           NGX_DR_JWT_MALFORMED, "alg none: refused");

    is_int(ngx_dr_jwt_decode(S("a.b"), S("FAKE-secret"), 0, &got),
           NGX_DR_JWT_MALFORMED, "two parts: refused");
    is_int(ngx_dr_jwt_decode(S("a.b.c.d"), S("FAKE-secret"), 0, &got),
           NGX_DR_JWT_MALFORMED, "four parts: refused");
    is_int(ngx_dr_jwt_decode(S(".."), S("FAKE-secret"), 0, &got),
           NGX_DR_JWT_MALFORMED, "empty parts: refused");

    memset(forged, 'a', sizeof(forged));
    is_int(ngx_dr_jwt_decode(forged, NGX_DR_JWT_MAX + 1, S("FAKE-secret"),
                             0, &got),
           NGX_DR_JWT_MALFORMED, "a token over 1024 bytes: refused");
}


int
main(void)
{
    test_base64url();
    test_email();
    test_password();
    test_scrypt();
    test_jwt();

    return done_testing();
}

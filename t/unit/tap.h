
/*
 * Domain Runner: a tiny header-only TAP producer for the C unit tests.
 *
 *     plan(n);                             optional, prints "1..n"
 *     ok(cond, "name %d", i);              names are printf formats
 *     is_int(got, expected, "name");
 *     is_double(got, expected, eps, "name");
 *     is_str(got, expected, "name");
 *     diag("why %s", s);                   "# why ..." on stdout
 *     return done_testing();               0 only if all passed as planned
 *
 * The state lives in a function-local static so that a test that uses
 * only part of the header still compiles clean with -Wall -Wextra -Werror.
 */


#ifndef _DR_TAP_H_INCLUDED_
#define _DR_TAP_H_INCLUDED_


#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>


typedef struct {
    int  planned;                   /* -1: no plan yet */
    int  run;
    int  failed;
} tap_state_t;


static inline tap_state_t *
tap_state(void)
{
    static tap_state_t  s = { -1, 0, 0 };

    return &s;
}


static inline void
plan(int n)
{
    tap_state()->planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}


static inline void
diag(const char *fmt, ...)
{
    va_list  args;

    fputs("# ", stdout);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    fputs("\n", stdout);
    fflush(stdout);
}


static inline int
tap_vok(int pass, const char *file, int line, const char *fmt, va_list args)
{
    tap_state_t  *s;

    s = tap_state();
    s->run++;

    if (!pass) {
        s->failed++;
    }

    printf("%sok %d - ", pass ? "" : "not ", s->run);
    vprintf(fmt, args);
    fputs("\n", stdout);

    if (!pass) {
        printf("#   Failed test at %s line %d.\n", file, line);
    }

    fflush(stdout);

    return pass;
}


static inline int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    int      rc;
    va_list  args;

    va_start(args, fmt);
    rc = tap_vok(pass, file, line, fmt, args);
    va_end(args);

    return rc;
}


static inline int
tap_is_int(long long got, long long expected, const char *file, int line,
    const char *fmt, ...)
{
    int      rc;
    va_list  args;

    va_start(args, fmt);
    rc = tap_vok(got == expected, file, line, fmt, args);
    va_end(args);

    if (!rc) {
        diag("         got: %lld", got);
        diag("    expected: %lld", expected);
    }

    return rc;
}


/* eps 0 asks for the exact same value; NaN never passes */
static inline int
tap_is_double(double got, double expected, double eps, const char *file,
    int line, const char *fmt, ...)
{
    int      rc;
    va_list  args;

    va_start(args, fmt);
    rc = tap_vok(fabs(got - expected) <= eps, file, line, fmt, args);
    va_end(args);

    if (!rc) {
        diag("         got: %.17g", got);
        diag("    expected: %.17g (+- %g)", expected, eps);
    }

    return rc;
}


static inline int
tap_is_str(const char *got, const char *expected, const char *file,
    int line, const char *fmt, ...)
{
    int      rc, pass;
    va_list  args;

    if (got == NULL || expected == NULL) {
        pass = (got == expected);

    } else {
        pass = (strcmp(got, expected) == 0);
    }

    va_start(args, fmt);
    rc = tap_vok(pass, file, line, fmt, args);
    va_end(args);

    if (!rc) {
        diag("         got: %s%s%s", got ? "'" : "", got ? got : "NULL",
             got ? "'" : "");
        diag("    expected: %s%s%s", expected ? "'" : "",
             expected ? expected : "NULL", expected ? "'" : "");
    }

    return rc;
}


/* prints the plan if none was given; the exit code for main() */
static inline int
done_testing(void)
{
    tap_state_t  *s;

    s = tap_state();

    if (s->planned < 0) {
        printf("1..%d\n", s->run);
        s->planned = s->run;
    }

    if (s->planned != s->run) {
        diag("planned %d tests but ran %d", s->planned, s->run);
        fflush(stdout);
        return 255;
    }

    if (s->failed > 0) {
        diag("failed %d test%s of %d", s->failed,
             s->failed == 1 ? "" : "s", s->run);
    }

    fflush(stdout);

    return s->failed > 254 ? 254 : s->failed;
}


#define ok(cond, ...)                                                        \
    tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, expected, ...)                                           \
    tap_is_int((long long) (got), (long long) (expected), __FILE__,          \
               __LINE__, __VA_ARGS__)

#define is_double(got, expected, eps, ...)                                   \
    tap_is_double((got), (expected), (eps), __FILE__, __LINE__, __VA_ARGS__)

#define is_str(got, expected, ...)                                           \
    tap_is_str((got), (expected), __FILE__, __LINE__, __VA_ARGS__)


#endif /* _DR_TAP_H_INCLUDED_ */

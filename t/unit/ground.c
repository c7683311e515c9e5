
/*
 * Domain Runner: unit tests of ngx_dr_module/ngx_dr_ground.c, in TAP.
 *
 * The answers are the sentences models write about a brand: a founding
 * year after "founded" or "established", a headquarters after
 * "headquartered in", "based in" or before "-based", several cities for
 * one key, a wrong year, a wrong city, a year in another sentence that
 * must not count.  Each expected figure is worked out in a comment.
 *
 * Build and run (t/24-ground-unit.t runs the binary under prove):
 *
 *   mkdir -p build/unit && cc -std=c99 -O2 -g -Wall -Wextra -Werror \
 *       -Ingx_dr_module -o build/unit/ground t/unit/ground.c \
 *       ngx_dr_module/ngx_dr_ground.c
 */


#include <stdio.h>
#include <string.h>

#include "ngx_dr_ground.h"
#include "tap.h"


#define NELTS(a)  (sizeof(a) / sizeof((a)[0]))

#define U  NGX_DR_GROUND_UNMENTIONED
#define S  NGX_DR_GROUND_SUPPORTED
#define C  NGX_DR_GROUND_CONTRADICTED


static const char *const  hq_dublin_aliases[] = { "Baile Átha Cliath" };
static const char *const  category_aliases[] = { "payment processing" };

/* stripe.com as an operator would give it */
static const ngx_dr_ground_fact_t  stripe[] = {
    { NGX_DR_GROUND_FOUNDED, "2010", NULL, 0 },
    { NGX_DR_GROUND_HEADQUARTERS, "San Francisco", NULL, 0 },
    { NGX_DR_GROUND_HEADQUARTERS, "Dublin", hq_dublin_aliases, 1 },
    { NGX_DR_GROUND_CATEGORY, "payments", category_aliases, 1 },
    { NGX_DR_GROUND_FOUNDERS, "Patrick Collison", NULL, 0 }
};


static void
answer(const char *text, const unsigned char *expect, const char *name)
{
    size_t         i;
    unsigned char  st[NELTS(stripe)];
    char           got[NELTS(stripe) + 1], want[NELTS(stripe) + 1];

    memset(st, 0xff, sizeof(st));

    is_int(ngx_dr_ground_answer(stripe, NELTS(stripe), text, strlen(text),
                                st),
           NGX_DR_GROUND_OK, "%s: checked", name);

    for (i = 0; i < NELTS(stripe); i++) {
        got[i] = "usc?"[st[i] > 2 ? 3 : st[i]];
        want[i] = "usc"[expect[i]];
    }

    got[i] = '\0';
    want[i] = '\0';

    /* founded, SF, Dublin, category, founders: u, s or c each */
    is_str(got, want, "%s", name);
}


static void
test_keys(void)
{
    is_int(ngx_dr_ground_key("founded", 7), NGX_DR_GROUND_FOUNDED,
           "founded is a key");
    is_int(ngx_dr_ground_key("former_names", 12),
           NGX_DR_GROUND_FORMER_NAMES, "former_names is a key");
    is_int(ngx_dr_ground_key("founde", 6), -1, "a prefix is no key");
    is_int(ngx_dr_ground_key("Founded", 7), -1, "keys are lower-case");
    is_int(ngx_dr_ground_key(NULL, 0), -1, "NULL is no key");
    is_str(ngx_dr_ground_key_name(NGX_DR_GROUND_HEADQUARTERS),
           "headquarters", "a key's name");
    is_str(ngx_dr_ground_key_name(99), "unknown", "no such key");
    is_str(ngx_dr_ground_status_name(C), "contradicted", "a status' name");
}


static void
test_values(void)
{
    char  many[200];
    int   i;

    is_int(ngx_dr_ground_value(NGX_DR_GROUND_FOUNDED, "2010", 4),
           NGX_DR_GROUND_OK, "2010 is a founding year");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_FOUNDED, "1799", 4),
           NGX_DR_GROUND_EINVAL, "1799 is too early");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_FOUNDED, "2100", 4),
           NGX_DR_GROUND_EINVAL, "2100 is too late");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_FOUNDED, "201", 3),
           NGX_DR_GROUND_EINVAL, "three digits are no year");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_FOUNDED, " 2010", 5),
           NGX_DR_GROUND_EINVAL, "a year with a space is refused");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_FOUNDED, "May 2010", 8),
           NGX_DR_GROUND_EINVAL, "a date is no year");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_HEADQUARTERS, "Dublin", 6),
           NGX_DR_GROUND_OK, "a city");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_CATEGORY, "", 0),
           NGX_DR_GROUND_EINVAL, "an empty value");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_CATEGORY, "--", 2),
           NGX_DR_GROUND_EINVAL, "a value of no word");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_CATEGORY, "a\nb", 3),
           NGX_DR_GROUND_EINVAL, "a control character");
    is_int(ngx_dr_ground_value(-1, "x", 1), NGX_DR_GROUND_EINVAL,
           "no such key");

    for (i = 0; i < 17; i++) {
        many[2 * i] = 'w';
        many[2 * i + 1] = ' ';
    }

    is_int(ngx_dr_ground_value(NGX_DR_GROUND_PRODUCTS, many, 32),
           NGX_DR_GROUND_OK, "16 words");
    is_int(ngx_dr_ground_value(NGX_DR_GROUND_PRODUCTS, many, 34),
           NGX_DR_GROUND_EINVAL, "17 words are too many");
}


static void
test_answers(void)
{
    static const unsigned char  all[] = { S, S, S, U, S };
    static const unsigned char  wrong[] = { C, C, C, U, U };
    static const unsigned char  based[] = { S, S, U, S, U };
    static const unsigned char  none[] = { U, U, U, U, U };
    static const unsigned char  other_city[] = { U, C, C, U, U };
    static const unsigned char  category[] = { U, U, U, S, U };
    static const unsigned char  sf[] = { U, S, U, U, U };
    static const unsigned char  dublin[] = { U, U, S, U, U };
    static const unsigned char  alias[] = { U, U, S, S, U };
    static const unsigned char  both[] = { S, S, C, U, U };

    /* every fact but the category, stated as a model states them */
    answer("Stripe was founded in 2010 by Patrick Collison and his "
           "brother, and is headquartered in San Francisco and Dublin.",
           all, "all stated");

    /* a wrong year and a listed city that is neither headquarters */
    answer("Stripe was founded in 2011 and is headquartered in New York.",
           wrong, "a wrong year and city");

    /* "-based" names the city before it; Dublin is left out, not
     * contradicted, since San Francisco is one of the key's values */
    answer("Stripe, a San Francisco-based payments company established "
           "in 2010, serves millions of businesses.", based,
           "a city before -based");

    /* the year is in another sentence than "founded" */
    answer("It was founded. 2011 was a big year for it.", none,
           "a year after the sentence ends");
    answer("In 2011 the company grew. It was founded by two brothers "
           "from Ireland who met at school.", none,
           "no year within the window");

    /* Washington is not a listed city: Redmond alone contradicts */
    answer("The company is headquartered in Redmond, Washington.",
           other_city, "a state after the city");

    /* London is past the window of six tokens */
    answer("Stripe is headquartered in San Francisco, with offices in "
           "London.", sf, "a city outside the window");
    answer("The company is based in London.", other_city,
           "based in another city");
    answer("Stripe\xe2\x80\x99s headquarters are in Dublin.", dublin,
           "a typographic apostrophe");
    answer("HEADQUARTERED IN SAN-FRANCISCO since the start.", sf,
           "case and hyphens");
    answer("Headquartered in San Franciscoville, it sells payments.",
           category, "a longer word is not the city");
    answer("Known in Irish as Baile \xc3\x81tha Cliath, its home is "
           "headquarters; a leader in payment processing.",
           category, "an alias outside a headquarters sentence");
    answer("Its headquarters: Baile \xc3\x81tha Cliath. A leader in "
           "payment processing.", alias, "aliases");

    /* support outweighs contradiction within one answer; Dublin is
     * contradicted by New York */
    answer("Founded in 2010 and headquartered in New York and San "
           "Francisco.", both, "a right and a wrong city");

    answer("", none, "an empty answer");
}


/* a value longer than any accepted is never stated, and read safely */

static void
test_long_value(void)
{
    unsigned char         st[1];
    ngx_dr_ground_fact_t  f;

    static const char  words[] =
        "a b c d e f g h i j k l m n o p q r s t";

    f.key = NGX_DR_GROUND_PRODUCTS;
    f.value = words;
    f.aliases = NULL;
    f.n_aliases = 0;

    is_int(ngx_dr_ground_answer(&f, 1, words, sizeof(words) - 1, st),
           NGX_DR_GROUND_OK, "a value of 20 words: checked");
    is_int(st[0], U, "... and never stated");
}


/* three models: one contradicts itself, two answers are not valid */

static void
test_domain(void)
{
    size_t                  i;
    ngx_dr_ground_result_t  res, rev;

    static const ngx_dr_ground_fact_t  facts[] = {
        { NGX_DR_GROUND_FOUNDED, "2010", NULL, 0 },
        { NGX_DR_GROUND_HEADQUARTERS, "San Francisco", NULL, 0 }
    };

    static const ngx_dr_ground_answer_t  answers[] = {
        { "a/one",
          "Stripe was founded in 2010 and is headquartered in San "
          "Francisco.", 0, 1 },
        { "a/one",
          "Stripe was founded in 2011 and sells payment software to "
          "online businesses.", 0, 1 },
        { "b/two",
          "Stripe was founded in 2010 and sells payment software to "
          "online businesses.", 0, 1 },
        /* not valid (a refusal): its wrong year does not count */
        { "b/two",
          "I'm not familiar with Stripe, which was founded in 1999 as "
          "far as anyone knows.", 0, 0 },
        /* not valid (a provider error) */
        { "c/three",
          "Stripe was founded in 1999 and is headquartered in Paris.", 0,
          0 }
    };

    ngx_dr_ground_answer_t  in[NELTS(answers)], back[NELTS(answers)];

    for (i = 0; i < NELTS(answers); i++) {
        in[i] = answers[i];
        in[i].text_len = strlen(in[i].text);
        back[NELTS(answers) - 1 - i] = in[i];
    }

    is_int(ngx_dr_ground_domain(facts, 2, in, NELTS(in), &res),
           NGX_DR_GROUND_OK, "a domain's grounding");

    /* c/three has no valid answer: two models */
    is_int(res.n_models, 2, "models with a valid answer");
    is_str(res.models[0].model, "a/one", "models sorted");

    /* a/one: 2010 once, 2011 once -> contradicted; SF supported */
    is_int(res.models[0].supported, 1, "a/one supports one fact");
    is_int(res.models[0].contradicted, 1, "a/one contradicts one");

    /* b/two: 2010 supported, SF unmentioned (the refusal is left out) */
    is_int(res.models[1].supported, 1, "b/two supports one fact");
    is_int(res.models[1].contradicted, 0, "b/two contradicts none");
    is_int(res.models[1].unmentioned, 1, "b/two leaves one out");

    is_int(res.facts[0].supported, 1, "founded: supported by one model");
    is_int(res.facts[0].contradicted, 1, "founded: contradicted by one");
    is_str(ngx_dr_ground_fact_status(&res.facts[0]), "disputed",
           "founded is disputed");
    is_str(ngx_dr_ground_fact_status(&res.facts[1]), "verified",
           "the headquarters are verified");

    /* 2 supported, 1 contradicted, 1 unmentioned of 4 pairs */
    is_int(res.supported, 2, "supported pairs");
    is_int(res.contradicted, 1, "contradicted pairs");
    is_int(res.unmentioned, 1, "unmentioned pairs");
    ok(res.has_score, "a score");
    is_double(res.score, 200.0 / 3, 1e-9, "score 100 x 2 / 3");
    is_double(res.strength, 75.0, 1e-9, "strength 100 x 3 / 4");

    is_int(ngx_dr_ground_domain(facts, 2, back, NELTS(back), &rev),
           NGX_DR_GROUND_OK, "the answers reversed");
    ok(rev.score == res.score && rev.strength == res.strength
       && strcmp(rev.models[0].model, "a/one") == 0
       && rev.models[0].contradicted == 1, "the same figures");

    ngx_dr_ground_result_free(&rev);
    ngx_dr_ground_result_free(&res);

    /* no fact: models, but nothing stated and no score */
    is_int(ngx_dr_ground_domain(NULL, 0, in, NELTS(in), &res),
           NGX_DR_GROUND_OK, "no facts");
    ok(!res.has_score && res.strength == 0 && res.n_models == 2,
       "no score without facts");
    ngx_dr_ground_result_free(&res);

    in[0].model = NULL;
    is_int(ngx_dr_ground_domain(facts, 2, in, NELTS(in), &res),
           NGX_DR_GROUND_EINVAL, "a NULL model is refused");
    is_int(ngx_dr_ground_domain(facts, 2, in, 1, NULL),
           NGX_DR_GROUND_EINVAL, "a NULL result is refused");

    back[0].text = NULL;
    back[0].valid = 1;
    is_int(ngx_dr_ground_domain(facts, 2, back, 1, &res),
           NGX_DR_GROUND_EINVAL, "a NULL text with a length is refused");
    ngx_dr_ground_result_free(&res);
}


int
main(void)
{
    test_keys();
    test_values();
    test_answers();
    test_long_value();
    test_domain();

    return done_testing();
}

# GET /admin/providers: each provider as configured, its keys masked to
# their last 4 characters, what its buckets hold, its breaker's state;
# and tpm=, a token budget per key that paces the calls by the tokens the
# providers count when a call arrives (the prompt's and the longest
# answer's).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $sim = DR::Sim->start(latency_ms => 20, seed => 5,
                         tpm_provider => { openai => 30000 });

my @openai = ('sim-test-key-openai-FAKE-1111',
              'sim-test-key-openai-FAKE-2222');
$ENV{DR_TEST_KEY_OPENAI_A} = $openai[0];
$ENV{DR_TEST_KEY_OPENAI_B} = $openai[1];
$ENV{DR_TEST_KEY_ANTHROPIC} = 'FAKE-short';
my ($oa, $an) = map { $sim->base_url($_) } qw(openai anthropic);

my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_provider name=openai base=$oa model=gpt-4o-mini
                key_env=DR_TEST_KEY_OPENAI_A,DR_TEST_KEY_OPENAI_B
                rpm=600 tpm=30000 concurrency=16;
    dr_provider name=anthropic base=$an model=claude-3-5-haiku-20241022
                key_env=DR_TEST_KEY_ANTHROPIC rpm=3000;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
$t->dbh->do(q{INSERT INTO domains (domain, category)
              VALUES ('stripe.com', 'Finance')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($_[3] // $admin, @_[0 .. 2]) }

my $r = admin('GET', '/admin/providers');
is($r->{status}, 200, 'GET /admin/providers');
my %p = map { ($_->{name} => $_) } @{ $r->{json}{providers} // [] };
is_deeply([sort keys %p], [qw(anthropic openai)], 'both providers');
is_deeply([@{ $p{openai} }{qw(format base rpm tpm concurrency)}],
          ['openai', $oa, 600, 30000, 16], 'openai as configured');
is_deeply($p{openai}{models}, ['gpt-4o-mini'], 'its model');
is_deeply([map { $_->{key} } @{ $p{openai}{keys} }], ['****1111', '****2222'],
          'its two keys, masked to their last 4 characters');
is_deeply([map { $_->{requests_available} } @{ $p{openai}{keys} }], [12, 12],
          'each key\'s request bucket full: a fiftieth of 600');
is_deeply([map { $_->{tokens_available} } @{ $p{openai}{keys} }],
          [1000, 1000], 'each key\'s token bucket full');
is_deeply([map { $_->{key} } @{ $p{anthropic}{keys} }], ['****'],
          'a short key shows nothing of itself');
is($p{anthropic}{tpm}, undef, 'no token budget unless asked');
is($p{anthropic}{concurrency}, 64, 'the default concurrency');
is_deeply($p{openai}{breaker}, { state => 'closed', failures_in_a_row => 0,
          half_open_in_seconds => 0 }, 'its breaker closed');
for my $secret (@openai, 'FAKE-short') {
    unlike($r->{content}, qr/\Q$secret\E/, 'no key in the answer');
}

# a probe: openai's calls wait for their tokens
$sim->reset;
$r = admin('POST', '/admin/probe', '{"domain":"stripe.com"}');
is($r->{status}, 200, 'a probe of stripe.com');
my @ok = grep { $_->{provider} eq 'openai' && $_->{status} eq 'ok' }
    @{ $r->{json}{answers} // [] };
is(scalar @ok, 3, 'openai answered its 3 prompts');

# each call is charged ceil(prompt bytes / 4) + 600 tokens; two keys
# begin with 1000 each and refill 29000 a minute (483 a second): the
# third call waits for its key's tokens
my ($bytes) = $t->dbh->selectall_arrayref(q{SELECT
    replace(template, '{domain}', 'stripe.com') FROM prompts WHERE active
    ORDER BY name});
my @cost = map { int((length($_->[0]) + 3) / 4) + 600 } @$bytes;
my $least;
for my $third (0 .. 2) {
    my @first = map { $cost[$_] } grep { $_ != $third } 0 .. 2;
    my $w = ($cost[$third] - (1000 - ($first[0] < $first[1] ? $first[0]
                                                            : $first[1])))
        / (29000 / 60);
    $least = $w if !defined $least || $w < $least;
}
# when the provider saw them: without the wait the third would come at
# once; a loaded machine may deliver the first late and the third on
# time, so half the wait is what shows that it waited
my @at = sort { $a <=> $b } map { $_->{t} }
    grep { $_->{provider} eq 'openai' } @{ $sim->stats->{recent} };
is(scalar @at, 3, 'the provider saw 3 calls');
my $waited = @at == 3 ? $at[2] - $at[0] : 0;
cmp_ok($waited, '>=', 0.5 * $least, sprintf('its third call came %.2f s '
    . 'after the first: it waited for tokens (at least %.2f s)', $waited,
    $least));

$r = admin('GET', '/admin/providers');
%p = map { ($_->{name} => $_) } @{ $r->{json}{providers} // [] };
my $tokens = 0;
$tokens += $_->{tokens_available} for @{ $p{openai}{keys} };
cmp_ok($tokens, '<', 2000, "the token buckets were drawn on: $tokens left");

# anthropic fails every call: its breaker opens
$sim->configure(faults => 'anthropic:500=1');
$r = admin('POST', '/admin/probe', '{"domain":"stripe.com"}');
is($r->{status}, 200, 'a probe with anthropic failing');
$r = admin('GET', '/admin/providers');
%p = map { ($_->{name} => $_) } @{ $r->{json}{providers} // [] };
is($p{anthropic}{breaker}{state}, 'open',
   'anthropic\'s breaker opened after its failures');
cmp_ok($p{anthropic}{breaker}{failures_in_a_row}, '>=', 5,
       'with its failures in a row');
cmp_ok($p{anthropic}{breaker}{half_open_in_seconds}, '>', 0,
       'and the time until a call tries again');
is($p{openai}{breaker}{state}, 'closed', 'openai\'s stays closed');
is($sim->over_limit, 0, 'no call over a key\'s limit of requests');
is($sim->over_limit_tokens, 0, 'nor of tokens, counted as the provider '
   . 'counts them');

# wrong uses
$r = admin('POST', '/admin/providers', '{}');
is($r->{status}, 405, 'POST: 405');
is($r->{headers}{allow}, 'GET, HEAD', 'it says what is allowed');
is(admin('GET', '/admin/providers', undef,
         $t->create_key(tier => 'free'))->{status}, 403,
   'a key of another tier: 403');

my $log = $t->error_log;
for my $secret (@openai, 'FAKE-short') {
    unlike($log, qr/\Q$secret\E/, 'no key in the error log');
}

$t->stop;

done_testing;

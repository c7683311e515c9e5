# The crawl's rate against a provider's limit, in a calm run: one key of
# 1,200 requests a minute, 300 jobs waiting, two workers.  The simulator
# counts every request that arrives when the key's rolling minute is full:
# none may, however fast the machine.  How close to the 20 a second
# allowed the crawl comes depends on this machine: it is reported here and
# measured by make bench (bench/crawl-rate.md).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

plan skip_all => 'a rate is not measured under valgrind'
    if $ENV{DR_VALGRIND};

my $rpm = 1200;
my $sim = DR::Sim->start(latency_ms => 50, seed => 3,
                         rpm_provider => { openai => $rpm });

$ENV{DR_TEST_KEY_OPENAI} = 'sim-test-key-openai-FAKE-0001';
my $base = $sim->base_url('openai');
my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_provider name=openai base=$base model=gpt-4o-mini
                key_env=DR_TEST_KEY_OPENAI rpm=$rpm;
    dr_runner on;
    dr_schedule off;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
my $dbh = $t->dbh;
$dbh->do('INSERT INTO domains (domain, category) SELECT '
    . q{'rate' || i || '.com', 'Tech' FROM generate_series(1, 100) i});
$t->start;

my $admin = $t->create_key(tier => 'admin');
my $r = $t->http('POST', '/admin/runs', headers => { 'X-API-Key' => $admin },
    body => encode_json({ models => ['openai/gpt-4o-mini'] }));
is($r->{json}{jobs}, 300, '100 domains x 1 model x 3 prompts');
my $run = $r->{json}{run_id};
is($t->wait_run($run, 300), 'done', 'the run ends');

my ($stored, $span) = $dbh->selectrow_array(q{SELECT count(*),
    extract(epoch FROM max(captured_at) - min(captured_at))::float8
    FROM responses WHERE run_id = ?}, undef, $run);
is($stored, 300, 'every answer stored once');
is($sim->over_limit, 0, 'no request arrived over the key\'s limit');

# the steady part: from the answer after the first burst to the last
my $burst = int($rpm / 50);
my ($from) = $dbh->selectrow_array(q{SELECT captured_at FROM responses
    WHERE run_id = ? ORDER BY captured_at OFFSET ? LIMIT 1}, undef, $run,
    $burst);
my ($steady, $secs) = $dbh->selectrow_array(q{SELECT count(*) - 1,
    extract(epoch FROM max(captured_at) - min(captured_at))::float8
    FROM responses WHERE run_id = ? AND captured_at >= ?}, undef, $run,
    $from);
my $allowed = $rpm / 60;
my $rate = $steady / $secs;
diag(sprintf '300 jobs in %.1f s; %d answers in %.1f s after the burst: '
    . '%.2f a second, %.1f%% of the %d allowed', $span, $steady, $secs,
    $rate, 100 * $rate / $allowed, $allowed);

$t->stop;

done_testing;

#!/usr/bin/perl
# The crawl's rate against a provider's limit, in a calm run (the run of
# t/68-runner-rate.t, which asserts only what does not depend on this
# machine's speed: no call over the limit, every answer stored once).
# One key of 1,200 requests a minute, 300 jobs waiting, two nginx
# workers, the simulator answering in 50 ms: how close the answers stored
# a second, once the bucket's first burst is spent, come to the 20 a
# second allowed.  The reference is the limit itself.
#
# Writes bench/crawl-rate.md.
#
#   perl bench/crawl-rate.pl [jobs / 3, default 100 domains]

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use POSIX qw(strftime);
use Test::More ();    # the harness reports through it

my $domains = shift // 100;
my $rpm = 1200;
my $load = (split ' ', `cat /proc/loadavg`)[0];

Test::More->builder->no_ending(1);
Test::More->builder->output('/dev/null');

my $sim = DR::Sim->start(latency_ms => 50, seed => 3,
                         rpm_provider => { openai => $rpm });

$ENV{DR_BENCH_KEY_OPENAI} = 'sim-bench-key-openai-FAKE-0001';
my $base = $sim->base_url('openai');
my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_provider name=openai base=$base model=gpt-4o-mini
                key_env=DR_BENCH_KEY_OPENAI rpm=$rpm;
    dr_runner on;
    dr_schedule off;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category) SELECT
    'rate' || i || '.com', 'Tech' FROM generate_series(1, ?) i}, undef,
    $domains);
$t->start;

my $admin = $t->create_key(tier => 'admin');
my $r = $t->http('POST', '/admin/runs', headers => { 'X-API-Key' => $admin },
    body => encode_json({ models => ['openai/gpt-4o-mini'] }));
my ($run, $jobs) = @{ $r->{json} // {} }{qw(run_id jobs)};
die "no run: $r->{content}\n" unless $run;
my $status = $t->wait_run($run, 600);
die "the run did not end ($status)\n" unless ($status // '') eq 'done';

my ($stored, $span) = $dbh->selectrow_array(q{SELECT count(*),
    extract(epoch FROM max(captured_at) - min(captured_at))::float8
    FROM responses WHERE run_id = ?}, undef, $run);

# the steady part: from the answer after the first burst to the last
my $burst = int($rpm / 50);
my ($from) = $dbh->selectrow_array(q{SELECT captured_at FROM responses
    WHERE run_id = ? ORDER BY captured_at OFFSET ? LIMIT 1}, undef, $run,
    $burst);
my ($steady, $secs) = $dbh->selectrow_array(q{SELECT count(*) - 1,
    extract(epoch FROM max(captured_at) - min(captured_at))::float8
    FROM responses WHERE run_id = ? AND captured_at >= ?}, undef, $run,
    $from);
my $over = $sim->over_limit;
$t->stop;
$sim->stop;

my $allowed = $rpm / 60;
my $rate = $steady / $secs;

my $cpus = `nproc` + 0;
my $when = strftime('%Y-%m-%d %H:%M UTC', gmtime);
open my $out, '>', "$FindBin::Bin/crawl-rate.md"
    or die "bench/crawl-rate.md: $!";
printf $out <<'MD',
# Crawl rate benchmark

`make bench` (bench/crawl-rate.pl), %s, %d CPUs shared by the
simulator, PostgreSQL and nginx (load average %s at the start). Two
nginx workers crawl a run of %d jobs against one provider key of %d
requests a minute (a bucket of %d, refilled at the rest of the
minute's); the simulator answers in 50 ms and counts every request over
the key's rolling minute.

| measurement | value |
|---|---|
| jobs, answers stored | %d, %d |
| requests over the key's limit | %d |
| first to last stored answer | %.1f s |
| after the first %d: answers, time | %d in %.1f s |
| **answers a second after the burst** | **%.2f** |
| **vs the %d a second allowed** | **%.1f%%** |

The limit is the reference: a crawl that waited for nothing but its
bucket would come to 100%%. What it falls short of it is time this
machine spent elsewhere (a claim, a store, a call held up) while a token
waited.
MD
    $when, $cpus, $load, $jobs, $rpm, $burst, $jobs, $stored, $over,
    $span, $burst, $steady, $secs, $rate, $allowed, 100 * $rate / $allowed;
close $out;

printf "crawl rate: %.2f answers/s after the burst, %.1f%% of the %d "
    . "allowed; %d over the limit\n", $rate, 100 * $rate / $allowed,
    $allowed, $over;
print "wrote bench/crawl-rate.md\n";

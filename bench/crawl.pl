#!/usr/bin/perl
# The crawl benchmark: one nginx worker works a run of the queue against
# the provider simulator answering in 300 ms (+-10%) with no rate limit,
# each of the eight providers allowed 300 calls in flight and the worker
# 2,400 jobs at once.  Measured in the same run:
#
#   (1) the reference: wrk driving the same simulator with as many
#       connections, each POSTing a chat completion and waiting for its
#       answer: what the simulator and this machine give without nginx,
#       libcurl and PostgreSQL;
#   (2) the crawl: jobs claimed from PostgreSQL, asked through libcurl in
#       the nginx event loop, the answers stored with their jobs' ends in
#       batches, one statement each: calls per second, the worker's CPU
#       time per 1,000 calls, the most calls it had in flight at once (its
#       own metric), PostgreSQL's CPU time per 1,000 calls, and the ratios
#       against (1) and against the ideal (in flight / latency).
#
# Writes bench/crawl.md.
#
#   perl bench/crawl.pl [domains, default 1000 (24 jobs each)]

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DR::Cpu qw(cpu_seconds pg_pids);
use DR::Sim;
use DR::Test;
use File::Temp qw(tempfile);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(strftime);
use Test::More ();    # the harness reports through it
use Time::HiRes qw(sleep time);

my $domains = shift // 1000;
my $latency = 300;
my $per_provider = 300;
my $jobs_held = 8 * $per_provider;
my $wrk_seconds = 10;

Test::More->builder->no_ending(1);
Test::More->builder->output('/dev/null');

# the simulator in two processes: one answers about 2,200 calls a second
# on this kind of machine, well under what one nginx worker asks
my $sim_workers = $ENV{DR_BENCH_SIM_WORKERS} // 2;
my %sim_opt = (latency_ms => $latency, seed => 1, max_clients => 20000,
               workers => $sim_workers);
my $sim = DR::Sim->start(%sim_opt);

# (1) the reference
my ($lua_fh, $lua) = tempfile(SUFFIX => '.lua', UNLINK => 1);
print $lua_fh <<'LUA';
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sim-bench-key-FAKE-0001"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user",' ..
    '"content":"What do you know about the brand stripe.com?"}],' ..
    '"max_tokens":600,"temperature":0.2}'
LUA
close $lua_fh;
my $wrk = `sh -c 'ulimit -n 65536 2>/dev/null; exec wrk -t 2 -c $jobs_held \\
    -d ${wrk_seconds}s --timeout 10s --latency -s $lua \\
    @{[ $sim->base_url('openai') ]}/chat/completions' 2>&1`;
my ($ref_rps) = $wrk =~ /Requests\/sec:\s+([\d.]+)/;
die "wrk failed:\n$wrk" unless $ref_rps;
my ($ref_p50) = $wrk =~ /^\s+50%\s+([\d.]+\w+)/m;
my ($ref_p99) = $wrk =~ /^\s+99%\s+([\d.]+\w+)/m;
my ($ref_err) = $wrk =~ /Non-2xx or 3xx responses: (\d+)/;
my ($ref_sock) = $wrk =~ /(Socket errors:.*)/;

# (2) the crawl
my $providers = '';
for my $p (sort keys %DR::Sim::MODELS) {
    my $env = 'DR_BENCH_KEY_' . uc $p;
    $ENV{$env} = "sim-bench-key-$p-FAKE-0001";
    $providers .= sprintf "    dr_provider name=%s base=%s model=%s "
        . "key_env=%s rpm=10000000 concurrency=%d;\n", $p,
        $sim->base_url($p), $DR::Sim::MODELS{$p}, $env, $per_provider;
}

my $t = DR::Test->new(db => 1, workers => 1, no_start => 1,
    main => 'worker_rlimit_nofile 16384;',
    events => 'worker_connections 8192;', http => <<"EOF");
    dr_pg "%%PG%%";
    dr_pg_pool_size 32;
    dr_pg_max_waiting 20000;
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:4m;
$providers
    dr_runner on;
    dr_runner_jobs $jobs_held;
    dr_schedule off;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
        location = /metrics { dr_metrics; }
    }
EOF
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category) SELECT
    'bench' || i || '.example', 'Tech' FROM generate_series(1, ?) i},
    undef, $domains);
$t->start;
my $worker;
for (1 .. 100) {
    ($worker) = $t->worker_pids;
    last if $worker;
    sleep 0.05;
}
die "no worker process\n" unless $worker;
my $admin = $t->create_key(tier => 'admin');

my $ua = HTTP::Tiny->new(timeout => 10);
my $base = 'http://127.0.0.1:' . $t->port;
sub metric {
    my ($name) = @_;
    my $r = $ua->get("$base/metrics");
    return $r->{content} =~ /^\Q$name\E (\d+)$/m ? $1 : 0;
}

# everyone's CPU: the simulator's processes and PostgreSQL's
my @sim_pids = ($sim->pid, split ' ', `pgrep -P @{[ $sim->pid ]}`);

my @pg_pids = pg_pids();
my ($sim0, $pg0) = (cpu_seconds(@sim_pids), cpu_seconds(@pg_pids));

my $cpu0 = cpu_seconds($worker);
my $t0 = time;
my $r = $ua->post("$base/admin/runs", { headers => { 'X-API-Key' => $admin },
    content => '{}' });
my $run = decode_json($r->{content})->{run_id} // die "no run: $r->{content}";
my $jobs = decode_json($r->{content})->{jobs};

my ($status, $peak_sampled, $first) = ('', 0, undef);
while (time - $t0 < 600) {
    my $now = metric('dr_provider_calls_in_flight');
    $peak_sampled = $now if $now > $peak_sampled;
    ($status) = $dbh->selectrow_array('SELECT status FROM runs WHERE id = ?',
        undef, $run);
    last if $status eq 'done';
    sleep 0.2;
}
my $elapsed = time - $t0;
my $cpu = cpu_seconds($worker) - $cpu0;
@pg_pids = pg_pids();
my $pg_cpu = cpu_seconds(@pg_pids) - $pg0;
my $sim_cpu = cpu_seconds(@sim_pids) - $sim0;
my $peak = metric('dr_provider_calls_in_flight_max');

my ($done, $calls, $stored, $span) = $dbh->selectrow_array(q{SELECT
    count(*) FILTER (WHERE status = 'done'), sum(attempts),
    (SELECT count(*) FROM responses WHERE run_id = $1),
    (SELECT extract(epoch FROM max(captured_at) - min(captured_at))
     FROM responses WHERE run_id = $1)::float8
    FROM jobs WHERE run_id = $1}, undef, $run);
$t->stop;
$sim->stop;

die "the run did not end ($status)\n" unless $status eq 'done';

my $rps = $calls / $span;
my $ideal = $peak / ($latency / 1000);
my %row = (
    jobs => $jobs, done => $done, stored => $stored, calls => $calls,
    elapsed => $elapsed, span => $span, rps => $rps,
    cpu => $cpu, cpu_per_1000 => 1000 * $cpu / $calls,
    peak => $peak, peak_sampled => $peak_sampled,
);

my $cpus = `nproc` + 0;

# what the machine spends on a call, whoever spends it: with the cores
# this gives, the most calls a second this machine could store
my $total_per_1000 = 1000 * ($cpu + $pg_cpu + $sim_cpu) / $calls;
my $when = strftime('%Y-%m-%d %H:%M UTC', gmtime);
open my $out, '>', "$FindBin::Bin/crawl.md" or die "bench/crawl.md: $!";
printf $out <<'MD',
# Crawl benchmark

`make bench` (bench/crawl.pl), %s, %d CPUs shared by the simulator,
PostgreSQL, nginx and wrk. One nginx worker; the simulator (%d processes)
answers every call in %d ms (+-10%%), no rate limit; 8 providers x %d
calls in flight, `dr_runner_jobs %d`.

| measurement | value |
|---|---|
| reference: wrk, %d connections to the simulator, %d s | %.0f answers/s (p50 %s, p99 %s, non-2xx %s%s) |
| crawl: jobs of the run, all done, stored once | %d jobs, %d done, %d answers |
| crawl: calls (attempts) | %d |
| crawl: first to last stored answer | %.1f s (run made to run done %.1f s) |
| **calls per second, one worker** | **%.0f** |
| vs the reference | %.0f%% |
| vs the ideal (most in flight / latency = %.0f/s) | %.0f%% |
| **most calls in flight at once in the worker** | **%d** (highest sampled every 0.2 s: %d) |
| **worker CPU per 1,000 calls** | **%.3f s** (%.1f s for the run: claim, call, parse, store, score) |
| PostgreSQL CPU per 1,000 calls | %.3f s (%.1f s; this cluster's processes that lived through the run) |
| simulator CPU per 1,000 calls | %.3f s (%.1f s) |
| all three per 1,000 calls | %.3f s: %d CPUs give at most %.0f calls/s |

The calls include the claim of each job from PostgreSQL, the request
through libcurl, the answer parsed, and the answers that come within
20 ms of each other stored by one statement with their jobs' ends; the
scores of each domain are written after its last
job. The reference has none of these: it says how fast this simulator
answers on this machine, which bounds the crawl. The three CPU lines
add up to what the machine's cores give in the run's time: the crawl's
rate here is the machine's, not the worker's, and the last line says
the most the machine could give with what a call costs (the simulator
taking the largest share, however many processes it runs on these
cores).
MD
    $when, $cpus, $sim_workers, $latency, $per_provider, $jobs_held,
    $jobs_held, $wrk_seconds, $ref_rps, $ref_p50 // '?', $ref_p99 // '?',
    $ref_err // 0, $ref_sock ? ", $ref_sock" : '',
    $jobs, $done, $stored, $calls, $span, $elapsed, $rps,
    100 * $rps / $ref_rps, $ideal, 100 * $rps / $ideal,
    $peak, $peak_sampled, $row{cpu_per_1000}, $cpu,
    1000 * $pg_cpu / $calls, $pg_cpu, 1000 * $sim_cpu / $calls, $sim_cpu,
    $total_per_1000, $cpus, 1000 * $cpus / $total_per_1000;
close $out;

print "crawl: $jobs jobs, ", sprintf('%.0f calls/s, %.3f s CPU per 1000 '
    . 'calls, %d in flight at most; reference %.0f/s', $rps,
    $row{cpu_per_1000}, $peak, $ref_rps), "\n";
print "wrote bench/crawl.md\n";

# Readiness follows PostgreSQL: 503 at once when the server goes away (no
# request waits on it), 200 again once it is back, without anybody
# touching nginx.  The pool connects over TCP to a host name resolved at
# configuration time.
#
# The specification's "within a second" is what a healthy machine shows
# (the latencies are reported); what is asserted is that no request waits
# on the database: each is answered 503 well within its client's
# deadline, and readiness comes back by itself.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep time);

my $pg = DR::Test::Cluster->private;

my $t = DR::Test->new(db => 1, cluster => $pg, no_start => 1);
my $port = $pg->{port};
$t->write_conf(<<"EOF");
    dr_pg "host=localhost port=$port user=$pg->{user} dbname=%%DBNAME%%";
    dr_pg_pool_size 2;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF
$t->start;

my $r = $t->get('/readyz');
is($r->{status}, 200, 'ready while PostgreSQL runs');
is($r->{json}{status}, 'ready', 'the body says ready');

# warm both workers' pools so that the stop finds open connections
$t->parallel(20, '/readyz');

my @workers = sort $t->worker_pids;

$pg->stop;
my $stopped = time;

# a request waiting on the database would meet the client's deadline and
# come back as 599, not 503
my $deadline = 5;
my ($first_503, $slowest, @codes) = (undef, 0);
for (1 .. 20) {
    my $r = $t->get('/readyz', timeout => $deadline);
    $slowest = $r->{elapsed} if $r->{elapsed} > $slowest;
    push @codes, $r->{status};
    if ($r->{status} == 503) {
        $first_503 //= time - $stopped;
        is($r->{json}{status}, 'not_ready', 'the body says not ready')
            if $_ == 1;
        is($r->{json}{error}, 'database_unavailable',
            'the body says why') if $_ == 1;
        unlike($r->{content}, qr{/tmp|socket|localhost},
            'the answer does not describe the infrastructure') if $_ == 1;
    }
    sleep 0.05;
}
is_deeply(\@codes, [(503) x 20],
    "every request while down answered 503, none waited ${deadline} s")
    or diag("@codes");
diag(sprintf 'first 503 %.0f ms after the stop; slowest answer %.0f ms',
    1000 * ($first_503 // -1), 1000 * $slowest);

$r = $t->get('/health', timeout => $deadline);
is($r->{status}, 503, '/health answers 503 while the database is down, '
    . 'without waiting on it');
is($r->{json}{status}, 'degraded', '/health says degraded');
diag(sprintf '/health answered in %.0f ms', 1000 * $r->{elapsed});

$pg->start;
my $back = time;

my $ready = DR::Test::wait_for(sub {
    $t->get('/readyz')->{status} == 200;
}, 60);
ok($ready, 'ready again after PostgreSQL came back')
    and diag(sprintf 'ready %.2f s after the start', time - $back);

# both workers recover, not just the one that answered first: a worker
# backing off answers 503 until its next attempt
my @last;
my $all_ready = DR::Test::wait_for(sub {
    @last = $t->parallel(20, '/readyz');
    20 == grep { $_ == 200 } @last;
}, 60, 0.2);
ok($all_ready, 'every worker is ready again, by itself')
    ? diag(sprintf 'all ready %.2f s after the start', time - $back)
    : diag("@last");

is_deeply([sort $t->worker_pids], \@workers,
    'the same workers: nginx was not restarted or reloaded');

my @log = split /\n/, $t->error_log;
ok(scalar(grep { /could not connect|connection lost/ } @log),
    'the outage is in the error log');
ok(!grep({ /^\s/ } @log), 'each error is on one line');

$t->stop;

done_testing;

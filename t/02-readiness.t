# Readiness follows PostgreSQL: 503 within a second of the server going
# away, 200 again once it is back, without anybody touching nginx.  The
# pool connects over TCP to a host name resolved at configuration time.

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
# the conninfo names the database of this test
{
    my $conf = do { local (@ARGV, $/) = ($t->dir . '/nginx.conf'); <> };
    $conf =~ s/%%DBNAME%%/$t->{dbname}/;
    open my $fh, '>', $t->dir . '/nginx.conf' or die;
    print $fh $conf;
}
$t->start;

my $r = $t->get('/readyz');
is($r->{status}, 200, 'ready while PostgreSQL runs');
is($r->{json}{status}, 'ready', 'the body says ready');

# warm both workers' pools so that the stop finds open connections
$t->parallel(20, '/readyz');

my @workers = sort $t->worker_pids;

$pg->stop;
my $stopped = time;

my ($first_503, $slowest) = (undef, 0);
for (1 .. 20) {
    my $r = $t->get('/readyz', timeout => 5);
    $slowest = $r->{elapsed} if $r->{elapsed} > $slowest;
    if ($r->{status} == 503) {
        $first_503 //= time - $stopped;
        is($r->{json}{status}, 'not_ready', 'the body says not ready')
            if $_ == 1;
        is($r->{json}{error}, 'database_unavailable',
            'the body says why') if $_ == 1;
        unlike($r->{content}, qr{/tmp|socket|localhost},
            'the answer does not describe the infrastructure') if $_ == 1;
    } else {
        fail("readiness answered $r->{status} while PostgreSQL is down");
    }
    sleep 0.05;
}
ok(defined $first_503 && $first_503 < 1,
    'the first 503 came within a second of the stop')
    or diag("first 503 after " . ($first_503 // 'never'));
ok($slowest < 1, 'every answer while down took less than a second')
    or diag("slowest: $slowest s");

$r = $t->get('/health');
is($r->{status}, 503, '/health answers 503 while the database is down');
is($r->{json}{status}, 'degraded', '/health says degraded');
ok($r->{elapsed} < 1, '/health answered within a second');

$pg->start;
my $back = time;

my $ready_after;
while (time - $back < 10) {
    my $r = $t->get('/readyz');
    if ($r->{status} == 200) {
        $ready_after = time - $back;
        last;
    }
    sleep 0.1;
}
ok(defined $ready_after, 'ready again after PostgreSQL came back')
    and diag(sprintf 'ready %.2f s after the start', $ready_after);

# both workers recover, not just the one that answered first: a worker
# backing off (at most 2 s) answers 503 until its next attempt
my $all_ready;
while (time - $back < 10) {
    my @codes = $t->parallel(20, '/readyz');
    if (20 == grep { $_ == 200 } @codes) {
        $all_ready = time - $back;
        last;
    }
    sleep 0.2;
}
ok(defined $all_ready && $all_ready < 5,
    'every worker is ready again within the back-off')
    and diag(sprintf 'all ready %.2f s after the start', $all_ready);

is_deeply([sort $t->worker_pids], \@workers,
    'the same workers: nginx was not restarted or reloaded');

my @log = split /\n/, $t->error_log;
ok(scalar(grep { /could not connect|connection lost/ } @log),
    'the outage is in the error log');
ok(!grep({ /^\s/ } @log), 'each error is on one line');

$t->stop;

done_testing;

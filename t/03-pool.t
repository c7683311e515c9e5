# The pool under load: 200 concurrent requests on 2 workers with 4
# connections each.  A lock held by the test keeps every query waiting in
# PostgreSQL, so the pool is saturated: at most 4 connections per worker
# are opened, the other queries wait in the pool's queue, the workers keep
# answering what needs no database, and once the lock goes every request
# is answered.  A client that goes away does not disturb the others.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = DR::Test->new(db => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_pg_pool_size 4;
    dr_pg_query_timeout 20s;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF

my $cluster = $t->{cluster};
my $lock = $t->dbh;

$lock->begin_work;
$lock->do('LOCK TABLE domains IN ACCESS EXCLUSIVE MODE');

my ($backends, $per_worker, $live_elapsed, $live_status, $waiting);

my @codes = $t->parallel(200, '/health', timeout => 60, before_read => sub {
    # let the workers take the requests and fill their pools
    my $deadline = time + ($ENV{DR_VALGRIND} ? 60 : 10);
    while (time < $deadline) {
        $backends = $cluster->nginx_backends($t->{dbname});
        last if $backends >= 8;    # 4 per worker
        sleep 0.1;
    }
    sleep 0.5;
    $backends = $cluster->nginx_backends($t->{dbname});

    my $check = $cluster->dbh('postgres');
    $per_worker = $check->selectcol_arrayref(q{
        SELECT count(*) FROM pg_stat_activity
         WHERE datname = ? AND application_name LIKE 'domain-runner %'
         GROUP BY application_name}, undef, $t->{dbname});
    ($waiting) = $check->selectrow_array(q{
        SELECT count(*) FROM pg_stat_activity
         WHERE datname = ? AND application_name LIKE 'domain-runner %'
           AND wait_event_type = 'Lock'}, undef, $t->{dbname});
    $check->disconnect;

    my $r = $t->get('/healthz', timeout => 5);
    ($live_status, $live_elapsed) = ($r->{status}, $r->{elapsed});

    $lock->commit;
});

# the kernel decides which worker accepts which connection: usually both
# take some, but one may take them all
ok(@$per_worker >= 1 && !grep({ $_ != 4 } @$per_worker),
    'each worker that took requests opened exactly its 4 connections')
    or diag("per worker: @$per_worker");
is($waiting, $backends, 'all of them were busy waiting on the lock');
is($live_status, 200, 'liveness answered while the pool was saturated');
ok($live_elapsed < 0.5, 'and answered at once: no worker was blocked')
    or diag("took $live_elapsed s");

is(scalar(@codes), 200, '200 requests sent');
is(scalar(grep { $_ == 200 } @codes), 200, 'all 200 answered 200')
    or diag(join ' ', @codes);

is($cluster->nginx_backends($t->{dbname}), $backends,
    'the connections stay open for reuse, no more were opened');

# a client that goes away while its query waits in the queue or runs

$lock->begin_work;
$lock->do('LOCK TABLE domains IN ACCESS EXCLUSIVE MODE');

my @gone;
for (1 .. 20) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port) or die;
    print $s "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    push @gone, $s;
}
sleep 0.5;
close $_ for @gone;
sleep 0.3;
$lock->commit;

# the pool drains the abandoned queries and serves new ones
@codes = $t->parallel(50, '/health', timeout => 30);
is(scalar(grep { $_ == 200 } @codes), 50,
    'after clients went away the pool serves everyone');

my @closed = grep { / 499 / } do {
    open my $fh, '<', $t->dir . '/access.log' or die;
    <$fh>;
};
is(scalar(@closed), 20, 'the 20 abandoned requests are logged as 499');

$t->stop;

done_testing;

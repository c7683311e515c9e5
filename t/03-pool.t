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
        location = /status { stub_status; }
    }
EOF

my $cluster = $t->{cluster};
my $lock = $t->dbh;

$lock->begin_work;
$lock->do('LOCK TABLE domains IN ACCESS EXCLUSIVE MODE');

my ($backends, $per_worker, @live, $waiting);

sub pool_state {
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
    $backends = 0;
    $backends += $_ for @$per_worker;
}

my @codes = $t->parallel(200, '/health', timeout => 120, before_read => sub {
    # let the workers take the requests and fill their pools: both pools
    # full, each connection waiting on the lock (when the kernel gave one
    # worker every connection, the deadline passes with one pool full)
    DR::Test::wait_for(sub {
        pool_state();
        $backends >= 8 && $waiting == $backends;
    }, $ENV{DR_VALGRIND} ? 120 : 60, 0.1);
    pool_state();

    # no worker is blocked: nothing would answer these until the lock
    # goes, which is after they are answered or given up
    @live = $t->parallel(20, '/healthz', timeout => 20);

    $lock->commit;
});

# the kernel decides which worker accepts which connection: usually both
# take some, but one may take them all
ok(@$per_worker >= 1 && !grep({ $_ != 4 } @$per_worker),
    'each worker that took requests opened exactly its 4 connections')
    or diag("per worker: @$per_worker");
is($waiting, $backends, 'all of them were busy waiting on the lock');
is_deeply(\@live, [(200) x 20],
    'liveness answered while the pool was saturated: no worker was blocked')
    or diag("@live");

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

# nginx has read the 20 requests (and the one asking), and their queries
# wait on the lock or in the pool's queue
ok(DR::Test::wait_for(sub {
    ($t->stub_status('/status')->{writing} // 0) >= 21;
}, 60), 'the requests are in progress');
ok(DR::Test::wait_for(sub { pool_state(); $waiting > 0 }, 60),
    'their queries wait on the lock');

close $_ for @gone;

# nginx sees each client go and ends its request as 499, the lock held
sub closed {
    open my $fh, '<', $t->dir . '/access.log' or die;
    return scalar grep { / 499 / } <$fh>;
}
DR::Test::wait_for(sub { closed() >= 20 }, 60);
$lock->commit;

# the pool drains the abandoned queries and serves new ones
@codes = $t->parallel(50, '/health', timeout => 60);
is(scalar(grep { $_ == 200 } @codes), 50,
    'after clients went away the pool serves everyone');

is(closed(), 20, 'the 20 abandoned requests are logged as 499');

$t->stop;

done_testing;

# Shutdown: a graceful stop lets queries in flight finish and answers
# their clients; a fast stop too leaves no socket or connection behind;
# PostgreSQL sees every connection of nginx go.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

my $conf = <<'EOF';
    dr_pg "%%PG%%";
    dr_pg_pool_size 4;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
        location = /status { stub_status; }
    }
EOF

my $t = DR::Test->new(db => 1, http => $conf);
my $cluster = $t->{cluster};

sub backends_gone {
    my ($db) = @_;
    return DR::Test::wait_for(sub { $cluster->nginx_backends($db) == 0 },
        60, 0.05);
}

# graceful: requests whose queries wait on a lock are still answered

my $lock = $t->dbh;
$lock->begin_work;
$lock->do('LOCK TABLE domains IN ACCESS EXCLUSIVE MODE');

my @socks;
for (1 .. 6) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port) or die;
    print $s "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    push @socks, $s;
}
# nginx has read the 6 requests (and the one asking), and queries wait
ok(DR::Test::wait_for(sub {
    ($t->stub_status('/status')->{writing} // 0) >= 7;
}, 60), 'the requests are in progress');
ok(DR::Test::wait_for(sub { $cluster->nginx_backends($t->{dbname}) > 0 },
    60), 'queries are in flight');

# once both workers have taken the signal, nginx would be gone if it did
# not wait for them
my $master = $t->master_pid;
my $from = $t->log_size;
kill 'QUIT', $master;
ok($t->wait_log(qr/gracefully shutting down(?s:.*)gracefully shutting down/,
    60, $from), 'both workers shut down gracefully');
ok(DR::Test::alive($master),
    'a graceful stop waits for the requests in flight');

$lock->commit;

my @status = map { my $s = $_; local $/; my $a = <$s> // '';
                   $a =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0 } @socks;
is_deeply(\@status, [(200) x 6], 'the requests in flight were answered');

$t->stop;    # waits for the exit and checks the log
ok($t->wait_exit($master, 5), 'nginx exited');
ok(backends_gone($t->{dbname}), 'PostgreSQL saw every connection close');

# fast: TERM with idle pooled connections

my $t2 = DR::Test->new(db => 1, http => $conf);
$t2->parallel(40, '/readyz');
ok($cluster->nginx_backends($t2->{dbname}) > 0, 'the pool has connections');

$master = $t2->master_pid;
my $t0 = time;
kill 'TERM', $master;
ok($t2->wait_exit($master, 60), 'a fast stop exits')
    and diag(sprintf 'nginx exited %.0f ms after TERM', 1000 * (time - $t0));
$t2->{running} = 1;
$t2->check_log;
$t2->{running} = 0;
ok(backends_gone($t2->{dbname}), 'and closes every connection');

done_testing;

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
    }
EOF

my $t = DR::Test->new(db => 1, http => $conf);
my $cluster = $t->{cluster};

sub backends_gone {
    my ($db) = @_;
    my $deadline = time + 5;
    while (time < $deadline) {
        return 1 if $cluster->nginx_backends($db) == 0;
        sleep 0.05;
    }
    return 0;
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
sleep 0.5;
ok($cluster->nginx_backends($t->{dbname}) > 0, 'queries are in flight');

my $master = $t->master_pid;
kill 'QUIT', $master;
sleep 0.5;
ok(DR::Test::alive($master),
    'a graceful stop waits for the requests in flight');

$lock->commit;

my @status = map { my $s = $_; local $/; my $a = <$s> // '';
                   $a =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0 } @socks;
is_deeply(\@status, [(200) x 6], 'the requests in flight were answered');

$t->stop;    # waits for the exit and checks the log
ok($t->wait_exit($master, 1), 'nginx exited');
ok(backends_gone($t->{dbname}), 'PostgreSQL saw every connection close');

# fast: TERM with idle pooled connections

my $t2 = DR::Test->new(db => 1, http => $conf);
$t2->parallel(40, '/readyz');
ok($cluster->nginx_backends($t2->{dbname}) > 0, 'the pool has connections');

$master = $t2->master_pid;
kill 'TERM', $master;
ok($t2->wait_exit($master, 5), 'a fast stop exits at once');
$t2->{running} = 1;
$t2->check_log;
$t2->{running} = 0;
ok(backends_gone($t2->{dbname}), 'and closes every connection');

done_testing;

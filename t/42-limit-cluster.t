# Cluster mode: two nginx instances (nodes) on one PostgreSQL, the same
# key hammered through both.  Each node pushes the tokens it took and
# subtracts what the other took, every interval; together they admit at
# most what one node would (burst + rate x elapsed) plus
# (rate x interval + burst) x (nodes - 1), the interval being the longest
# a node actually went between two exchanges (the configured one on an
# idle machine; a busy one may delay an exchange, and the bound says by
# how much it then grows).  And they admit about what one bucket fed all
# the requests at their times would: the exchange does not starve them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use POSIX qw(floor);
use Test::More;

plan skip_all => 'rates measured under valgrind mean nothing'
    if $ENV{DR_VALGRIND};
use Time::HiRes qw(sleep time);

my $seconds = $ENV{DR_LIMIT_SECONDS} // 8;
my ($rate, $burst, $interval) = (200, 20, 0.5);

my $conf = <<"EOF";
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_limit_sync interval=500ms node=%%NODE%%;
    dr_tier shared rate=$rate/s burst=$burst daily=0;

    log_format limits '\$msec \$status';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/limits.log limits;
        location = /ping {
            dr_auth required;
            empty_gif;
        }
        location / {
            dr_auth required;
            dr_api;
        }
    }
EOF

my $a = DR::Test->new(db => 1, no_start => 1, workers => 1);

# the second node on the database (and server secret) of the first
my $b = DR::Test->new(no_start => 1, workers => 1);
$b->{cluster} = $a->{cluster};
$b->{dbname} = $a->{dbname};
$b->{borrowed_db} = 1;
$b->{secret} = $a->{secret};

# when each node pushed what it took: a trigger of the test's own
$a->dbh->do($_) for
    'CREATE TABLE test_sync_log (node text, at timestamptz)',
    q{CREATE FUNCTION test_log_sync() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
          INSERT INTO test_sync_log VALUES (NEW.node, clock_timestamp());
          RETURN NEW;
      END $$},
    'CREATE TRIGGER test_sync_log AFTER INSERT OR UPDATE ON limit_consumption
         FOR EACH ROW EXECUTE FUNCTION test_log_sync()';

(my $ca = $conf) =~ s/%%NODE%%/node-a/;
(my $cb = $conf) =~ s/%%NODE%%/node-b/;
$a->write_conf($ca);
$b->write_conf($cb);
$a->start;
$b->start;

my $key = $a->create_key(tier => 'shared');

# warm both nodes' key caches and buckets, then let them sync
my @pids;
for my $t ($a, $b) {
    my $pid = fork // die;
    if ($pid == 0) {
        exec 'wrk', '-t', 1, '-c', 32, '-d', "${seconds}s", '-H',
            "X-API-Key: $key", 'http://127.0.0.1:' . $t->port . '/ping';
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;

my ($first, $last, $admitted, %by, @events);
for my $t ($a, $b) {
    open my $fh, '<', $t->dir . '/limits.log' or die;
    while (<$fh>) {
        my ($msec, $status) = split;
        $first = $msec if !defined $first || $msec < $first;
        $last = $msec if !defined $last || $msec > $last;
        if ($status == 200) {
            $admitted++;
            $by{$t->port}++;
        }
        my ($sec, $ms) = split /\./, $msec;
        push @events, $sec * 1000 + $ms;
    }
}

# the longest a node went between two pushes while the load ran
my ($longest) = $a->dbh->selectrow_array(q{
    SELECT max(gap) FROM (
        SELECT extract(epoch FROM at - lag(at) OVER (PARTITION BY node
                                                     ORDER BY at)) AS gap
          FROM test_sync_log
         WHERE at BETWEEN to_timestamp(?) AND to_timestamp(?)) g},
    undef, $first, $last);
$longest //= $interval / 2;

# what one node takes reaches the other when the first pushes and the
# other pulls, each at most one gap between exchanges later: normally
# half an interval each, on a busy machine as long as the longest gap
my $delay = 2 * $longest;
$delay = $interval if $delay < $interval;

# one bucket fed every request of both nodes, in the order of their times
my ($tokens, $at, $one_bucket) = ($burst, undef, 0);
for my $ms (sort @events) {    # milliseconds since 1970: 13 digits each
    $at //= $ms;
    $tokens += ($ms - $at) * $rate / 1000;
    $tokens = $burst if $tokens > $burst;
    $at = $ms;
    if ($tokens >= 1) {
        $tokens -= 1;
        $one_bucket++;
    }
}

my $elapsed = $last - $first;
my $one_node = $burst + floor($rate * $elapsed);
# a node learns of the other's consumption at most $delay late (one
# interval on a quiet machine); and each node's bucket for a new key
# starts full, which the first exchange charges back, at most one burst
my $bound = $one_node + ($rate * $delay + $burst) * (2 - 1);

diag(sprintf 'admitted %d (node a %d, node b %d) in %.2f s; one node '
    . 'would admit %d, one bucket fed the same requests %d; the longest '
    . 'between two exchanges %.2f s (every %.2f s configured), so news '
    . 'at most %.2f s late: the bound is %d; without sync two nodes would '
    . 'admit %d', $admitted, $by{$a->port} // 0, $by{$b->port} // 0,
    $elapsed, $one_node, $one_bucket, $longest, $interval / 2, $delay,
    $bound, 2 * $one_node);

ok($admitted <= $bound, 'two nodes admit at most '
    . '(rate x interval + burst) x (nodes - 1) more than one');
ok($admitted >= $one_bucket * 0.9,
    'and not much less than one bucket fed the same requests would: the '
    . 'sync does not starve them');
ok(($by{$a->port} // 0) > 0 && ($by{$b->port} // 0) > 0,
    'both nodes admitted requests');

my $dbh = $a->dbh;
my $rows = $dbh->selectall_arrayref(q{SELECT node, consumed
    FROM limit_consumption WHERE bucket LIKE 't:shared:k:%' ORDER BY node});
is(scalar @$rows, 2, 'each node published its consumption of the key');

$a->stop;
$b->stop;

done_testing;

# nginx -s reload under load: every request is answered, the new workers
# open their own pools, the old ones close theirs, and nothing is logged
# at [alert] or worse (no leaked connection or socket).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use HTTP::Tiny;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

my $t = DR::Test->new(db => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_pg_pool_size 4;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF

my $cluster = $t->{cluster};

# load: 4 clients, each a new connection per request, for 4 seconds
my @kids;
for my $k (1 .. 4) {
    pipe my $rd, my $wr or die;
    my $pid = fork // die;
    if ($pid == 0) {
        close $rd;
        my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
        my %seen;
        my $end = time + 4;
        my $i = 0;
        while (time < $end) {
            my $path = $i++ % 2 ? '/health' : '/readyz';
            my $r = $ua->get('http://127.0.0.1:' . $t->port . $path);
            $seen{$r->{status}}++;
        }
        print $wr join(' ', map { "$_=$seen{$_}" } sort keys %seen), "\n";
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    push @kids, [$pid, $rd];
}

my @before = sort $t->worker_pids;
for (1 .. 3) {
    sleep 0.8;
    $t->reload;
}
my @after = sort $t->worker_pids;

my %total;
for my $k (@kids) {
    my ($pid, $rd) = @$k;
    my $line = <$rd>;
    waitpid $pid, 0;
    for (split ' ', $line // '') {
        my ($status, $n) = split /=/;
        $total{$status} += $n;
    }
}

my $all = 0;
$all += $_ for values %total;
ok($all > 100, "the load ran ($all requests)");
is($total{200}, $all, 'every request during the reloads answered 200')
    or diag(explain \%total);

ok(!grep({ my $w = $_; grep { $_ == $w } @before } @after),
    'the workers were replaced');

# the old workers closed their connections: only the new ones remain
my $deadline = time + 5;
my $apps;
while (time < $deadline) {
    my $dbh = $cluster->dbh('postgres');
    $apps = $dbh->selectcol_arrayref(q{
        SELECT DISTINCT application_name FROM pg_stat_activity
         WHERE datname = ? AND application_name LIKE 'domain-runner %'},
        undef, $t->{dbname});
    $dbh->disconnect;
    last if !grep { my ($pid) = /worker (\d+)$/; !grep { $_ == $pid } @after }
        @$apps;
    sleep 0.1;
}
my @stale = grep { my ($pid) = /worker (\d+)$/; !grep { $_ == $pid } @after }
    @$apps;
ok(!@stale, 'no connection of an old worker is left in PostgreSQL')
    or diag("@stale");

$t->stop;

done_testing;

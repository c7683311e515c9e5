# nginx -s reload under load: every request is answered, the new workers
# open their own pools, the old ones close theirs, and nothing is logged
# at [alert] or worse (no leaked connection or socket).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use HTTP::Tiny;
use IO::Select;
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

# load: 4 clients, each a new connection per request, until told to stop
# (their pipe from the test closes)
my @kids;
for my $k (1 .. 4) {
    pipe my $rd, my $wr or die;
    pipe my $stop_rd, my $stop_wr or die;
    my $pid = fork // die;
    if ($pid == 0) {
        close $rd;
        close $stop_wr;
        my $stop = IO::Select->new($stop_rd);
        my $ua = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
        my %seen;
        my $i = 0;
        until ($stop->can_read(0)) {
            my $path = $i++ % 2 ? '/health' : '/readyz';
            my $r = $ua->get('http://127.0.0.1:' . $t->port . $path);
            $seen{$r->{status}}++;
        }
        print $wr join(' ', map { "$_=$seen{$_}" } sort keys %seen), "\n";
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    close $stop_rd;
    push @kids, [$pid, $rd, $stop_wr];
}

# the requests answered so far: one line each in the access log
sub answered {
    open my $fh, '<', $t->dir . '/access.log' or return 0;
    my $n = 0;
    $n++ while <$fh>;
    return $n;
}

# the load is answered before each reload and after the last
sub load_goes_on {
    my $from = answered();
    return DR::Test::wait_for(sub { answered() >= $from + 50 }, 60, 0.05);
}

my @before = sort $t->worker_pids;
my $went_on = load_goes_on();
for (1 .. 3) {
    $t->reload;
    $went_on = load_goes_on() && $went_on;
}
my @after = sort $t->worker_pids;

my %total;
close $_->[2] for @kids;
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
ok($went_on, "requests were answered before, between and after the "
    . "reloads ($all in all)");
is($total{200}, $all, 'every request during the reloads answered 200')
    or diag(explain \%total);

ok(!grep({ my $w = $_; grep { $_ == $w } @before } @after),
    'the workers were replaced');

# the old workers closed their connections: only the new ones remain
my $apps;
DR::Test::wait_for(sub {
    my $dbh = $cluster->dbh('postgres');
    $apps = $dbh->selectcol_arrayref(q{
        SELECT DISTINCT application_name FROM pg_stat_activity
         WHERE datname = ? AND application_name LIKE 'domain-runner %'},
        undef, $t->{dbname});
    $dbh->disconnect;
    !grep { my ($pid) = /worker (\d+)$/; !grep { $_ == $pid } @after }
        @$apps;
}, 60);
my @stale = grep { my ($pid) = /worker (\d+)$/; !grep { $_ == $pid } @after }
    @$apps;
ok(!@stale, 'no connection of an old worker is left in PostgreSQL')
    or diag("@stale");

$t->stop;

done_testing;

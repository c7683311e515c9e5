# The schedule: with dr_schedule, the first worker of every node asks for a run
# of every active domain, model and prompt once per window of the
# schedule (windows aligned to the Unix epoch, each named by its first
# second and unique among scheduled runs), and the queue's workers crawl
# it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep time);

my $sim = DR::Sim->start(latency_ms => 20, seed => 3);

my $providers = $sim->providers_conf(rpm => 600);

my $period = 4;
# two nodes on the same database, on the same schedule
sub node {
    my ($pg, %o) = @_;
    return DR::Test->new(%o, no_start => 1, http => <<"EOF2");
    dr_pg "$pg";
    dr_limit_zone zone=limits:1m;
    dr_runner on;
    dr_schedule ${period}s;
$providers
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /healthz { dr_api; }
    }
EOF2
}
my $t = node('%%PG%%', db => 1);
my $t2 = node($t->conninfo);
$t->dbh->do(q{INSERT INTO domains (domain, category)
              VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech')});
my $t0 = time;
$t->start;
$t2->start;

# the runs of at least two windows
my $runs;
DR::Test::wait_for(sub {
    $runs = $t->dbh->selectall_arrayref(q{SELECT id, schedule_slot,
        total_jobs, (SELECT count(*) FROM jobs WHERE run_id = runs.id),
        extract(epoch FROM created_at)
        FROM runs WHERE kind = 'scheduled' ORDER BY id});
    @$runs >= 2;
}, 60 * $period, 0.2);
my $t1 = time;
my $n = @$runs;
ok($n >= 2, "$n scheduled runs in "
    . sprintf('%.1f s of a %d s schedule', $t1 - $t0, $period));

# no window has more than one, and each is one that began while the
# nodes ran: at most one run for each
my $windows = int($t1 / $period) - int($t0 / $period) + 1;
ok($n <= $windows, "no more runs than the $windows windows that began");

my %slots;
for my $run (@$runs) {
    my ($id, $slot, $total, $jobs, $created) = @$run;
    is($total, 2 * 8 * 3, "run $id: every active domain, model, prompt");
    is($jobs, $total, "run $id: its jobs queued with it");
    is($slot % $period, 0, "run $id: its window starts on a multiple "
        . "of the period");
    ok($created >= $slot && $created < $slot + $period,
        "run $id: made within its window");
    ok($slot >= int($t0 / $period) * $period && $slot <= $t1,
        "run $id: of a window that began while the nodes ran");
    $slots{$slot}++;
}
is(scalar(keys %slots), $n,
   'one run per window, though two nodes of two workers each ask');

# the first scheduled run is crawled to its end
my ($first) = @{ $runs->[0] };
my $status = $t->wait_run($first, 300);
is($status, 'done', 'the first scheduled run is crawled to its end');
my ($stored) = $t->dbh->selectrow_array(
    'SELECT count(*) FROM responses WHERE run_id = ?', undef, $first);
is($stored, 48, 'with its 48 answers');

like($t->error_log . $t2->error_log, qr/scheduled run \d+ made with 48 jobs/,
     'the error log notes the scheduled runs');

$t2->stop;
$t->stop;

done_testing;

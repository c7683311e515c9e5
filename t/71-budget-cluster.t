# A spend budget under load: two nodes (two workers each) crawl one run
# on one PostgreSQL, with many slow calls in flight at once, some of
# whose answers say nothing of their tokens.  Whatever the interleaving,
# what the budget spent and holds never passes it, the answers stored
# cost no more than it spent, and every call that went out was reserved.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $sim = DR::Sim->start(latency_ms => 400, seed => 9,
                         faults => 'no_usage=0.1');

my $conf = <<'EOF' . $sim->providers_conf(rpm => 6000) . <<'EOF2';
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_runner on;
    dr_schedule off;
EOF

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
        location = /metrics { dr_metrics; }
    }
EOF2

my $a = DR::Test->new(db => 1, no_start => 1, http => $conf);

# the second node, on the first one's database and key secret
my $b = DR::Test->new(no_start => 1);
$b->{cluster} = $a->{cluster};
$b->{dbname} = $a->{dbname};
$b->{borrowed_db} = 1;
$b->{secret} = $a->{secret};
$b->write_conf($conf);

my $dbh = $a->dbh;
my @domains = map { "store$_.example" } 1 .. 20;
$dbh->do('INSERT INTO domains (domain, category) VALUES '
    . join(', ', map { "('$_', 'Retail')" } @domains));

$a->start;
$b->start;

my $admin = $a->create_key(tier => 'admin');

my $limit = 50000;    # micro-dollars: $0.05
my $r = $a->keyed($admin, 'POST', '/admin/budgets',
    '{"scope": "global", "period": "day", "usd": 0.05}');
is($r->{status}, 200, 'a global daily budget of $0.05');

$r = $a->keyed($admin, 'POST', '/admin/runs',
    encode_json({ domains => \@domains }));
is($r->{json}{jobs}, 480, 'a run of 480 jobs');
my $run = $r->{json}{run_id};

# watch the budget while both nodes crawl
my ($over, $most_held, $most_holds, $status) = (0, 0, 0, '');
my $t0 = time;
while (time < $t0 + 60) {
    my ($s, $h) = $dbh->selectrow_array(q{SELECT spent, reserved
        FROM budget_spend WHERE scope = 'global' AND period = 'day'});
    my ($holds) = $dbh->selectrow_array(
        'SELECT count(DISTINCT hold) FROM budget_holds');
    if (defined $s) {
        $over++ if $s + $h > $limit;
        $most_held = $h if $h > $most_held;
    }
    $most_holds = $holds if $holds > $most_holds;
    my $p = $a->keyed($admin, 'GET', "/admin/runs/$run")->{json} // {};
    $status = $p->{status} // '';
    last if $status eq 'budget_exhausted' && defined $h && $h == 0
            && time > $t0 + 15;
    sleep 0.1;
}

is($over, 0, 'spent and held never passed the budget');
ok($most_holds >= 20, "calls reserved at once: up to $most_holds");
is($status, 'budget_exhausted', 'the run waits for its budget');

my ($spent, $reserved) = $dbh->selectrow_array(q{SELECT spent, reserved
    FROM budget_spend WHERE scope = 'global' AND period = 'day'});
my ($stored, $answers, $unknown) = $dbh->selectrow_array(q{SELECT
    coalesce(sum(cost), 0), count(*),
    count(*) FILTER (WHERE input_tokens IS NULL)
    FROM responses WHERE run_id = ?}, undef, $run);
ok($spent + $reserved <= $limit, "spent $spent + held $reserved of "
    . "$limit micro-dollars");
ok($stored * 1e6 <= $spent + 0.5, "the answers stored cost $stored, "
    . "no more than was spent");
ok($answers > 10, "$answers answers stored before the budget ran out");
diag("$unknown answers without their tokens were spent in full");

# a call whose answer came after its lease ended (a loaded machine) is
# not stored: its job is still to do, and is asked again later
my $sent = $sim->stats(recent => 0)->{totals}{requests};
my ($undone) = $dbh->selectrow_array(q{SELECT count(*) FROM jobs
    WHERE run_id = ? AND status <> 'done'}, undef, $run);
ok($sent >= $answers && $sent - $answers <= $undone,
   "every call that went out is an answer stored, or its job is still to "
   . "do ($sent calls, $answers answers, $undone jobs to do)");
my ($twice) = $dbh->selectrow_array(q{SELECT count(*) FROM (SELECT job_id
    FROM responses WHERE run_id = ? GROUP BY job_id HAVING count(*) > 1) x},
    undef, $run);
is($twice, 0, 'no job has two answers');

for my $node ($a, $b) {
    my $m = $node->get('/metrics')->{content};
    my $calls = 0;
    $calls += $1 while $m =~ /^dr_provider_calls_total\{.*\} (\d+)$/mg;
    ok($calls > 0, "node " . $node->port . " made $calls of the calls");
}

$a->stop;
$b->stop;
$sim->stop;

done_testing;

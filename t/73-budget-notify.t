# A budget made on another node holds at once.  A worker calls a
# provider that no budget applies to without reserving first; it learns
# of every change of the budgets table by a notification.  Node a (two
# workers) crawls with no budget; a global budget of nothing made through
# node b, which does not crawl, stops node a's calls within a second or
# two (the calls in flight end), the run waits for its budget, and
# raising the budget on node b lets node a's calls go again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $sim = DR::Sim->start(latency_ms => 300, seed => 11);

my $server = <<'EOF';

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
        location = /metrics { dr_metrics; }
    }
EOF

# calls slowed by their slots, not by tokens: a call that has its slot
# reserves and leaves at once, so none waits long between the two
my $providers = '';
for my $p (sort keys %DR::Sim::MODELS) {
    my $env = 'DR_TEST_KEY_' . uc $p;
    $ENV{$env} = "sim-test-key-$p-FAKE-0001";
    $providers .= sprintf "    dr_provider name=%s base=%s model=%s "
        . "key_env=%s rpm=60000 concurrency=1;\n", $p, $sim->base_url($p),
        $DR::Sim::MODELS{$p}, $env;
}

my $a = DR::Test->new(db => 1, no_start => 1, workers => 2,
    http => <<'EOF' . $providers . $server);
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_runner on;
    dr_schedule off;
EOF

# the second node, on the first one's database and key secret: no runner
my $b = DR::Test->new(no_start => 1);
$b->{cluster} = $a->{cluster};
$b->{dbname} = $a->{dbname};
$b->{borrowed_db} = 1;
$b->{secret} = $a->{secret};
$b->write_conf(<<'EOF' . $server);
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_schedule off;
EOF

my $dbh = $a->dbh;
my @domains = map { "garden$_.example" } 1 .. 60;
$dbh->do('INSERT INTO domains (domain, category) VALUES '
    . join(', ', map { "('$_', 'Retail')" } @domains));

$a->start;
$b->start;

my $admin = $a->create_key(tier => 'admin');

sub sent { $sim->stats(recent => 0)->{totals}{requests} // 0 }

sub answers {
    my ($run) = @_;
    return scalar $dbh->selectrow_array(
        'SELECT count(*) FROM responses WHERE run_id = ?', undef, $run);
}

sub run_status {
    my ($run) = @_;
    my $p = $a->keyed($admin, 'GET', "/admin/runs/$run")->{json} // {};
    return $p->{status} // '';
}

my $r = $a->keyed($admin, 'POST', '/admin/runs',
    encode_json({ domains => \@domains }));
is($r->{json}{jobs}, 1440, 'a run of 1440 jobs on node a');
my $run = $r->{json}{run_id};

my $t0 = time;
sleep 0.2 while answers($run) < 20 && time < $t0 + 60;
ok(answers($run) >= 20, 'node a stores answers with no budget in force');
is($dbh->selectrow_array('SELECT count(*) FROM budget_holds'), 0,
    '... and holds no reservation');

$r = $b->keyed($admin, 'POST', '/admin/budgets',
    '{"scope": "global", "period": "day", "usd": 0}');
is($r->{status}, 200, 'a global daily budget of $0 made on node b');

# the notification within a second, and the calls in flight then end
sleep 3;
my $stopped = sent();
my $stored = answers($run);
sleep 4;
is(sent(), $stopped, "no call left node a after the budget ($stopped "
    . 'sent in all)');
is(answers($run), $stored, 'no answer was stored after it');
is(run_status($run), 'budget_exhausted', 'the run waits for its budget');

my ($queued) = $dbh->selectrow_array(q{SELECT count(*) FROM jobs
    WHERE run_id = ? AND status IN ('queued', 'leased')}, undef, $run);
ok($queued > 0, "$queued jobs wait, none spent");

# raised on node b: node a's calls go again
$r = $b->keyed($admin, 'POST', '/admin/budgets',
    '{"scope": "global", "period": "day", "usd": 1000}');
is($r->{status}, 200, 'the budget raised to $1000 on node b');

$t0 = time;
sleep 0.2 while answers($run) <= $stored + 10 && time < $t0 + 60;
ok(answers($run) > $stored + 10, 'node a stores answers again');
isnt(run_status($run), 'budget_exhausted', 'the run no longer waits');

$a->stop;
$b->stop;
$sim->stop;

done_testing;

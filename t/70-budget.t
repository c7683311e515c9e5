# Spend budgets: POST and GET /admin/budgets, the dr_budget defaults, and
# a crawl that stops at its budget.  A run under a global daily budget of
# $0.002 reports "budget_exhausted" with its jobs still queued (none
# failed or dead, no attempt spent) and its answers' cost within the
# budget; the probe is held to it too; raising the budget lets the run
# finish by itself, and so does the roll of a period.  Reservations a
# dead worker left are spent in full when they expire.  The budgets are
# in /metrics.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $sim = DR::Sim->start(latency_ms => 30, seed => 5);

my $conf = <<'EOF' . $sim->providers_conf(rpm => 600) . <<'EOF2';
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_runner on;
    dr_schedule off;
    dr_budget scope=provider:openai period=month usd=50;
    dr_budget scope=provider:mistral period=hour usd=0.25;
EOF

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
        location = /metrics { dr_metrics; }
    }
EOF2

# the directive's mistakes stop nginx -t
for my $bad (['scope=all period=day usd=1', qr/scope is "global" or/],
             ['scope=global period=week usd=1', qr/period is hour, day/],
             ['scope=global period=day usd=0.0000001', qr/usd is an amount/],
             ['scope=global period=day usd=-1', qr/usd is an amount/],
             ['scope=global period=day usd=1 x=1',
              qr/invalid number of arguments/],
             ['scope=global usd=1 usd=2', qr/needs scope=, period= and usd=/],
             ['scope=global period=day x=1', qr/unknown parameter "x=1"/])
{
    my $c = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_budget scope=global period=day usd=1;
    dr_budget $bad->[0];
EOF
    my ($rc, $out) = $c->test_conf;
    isnt($rc, 0, "nginx -t refuses dr_budget $bad->[0]");
    like($out, $bad->[1], '... and says why') or diag($out);
}
{
    my $c = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_budget scope=global period=day usd=1;
    dr_budget scope=global period=day usd=2;
EOF
    my ($rc, $out) = $c->test_conf;
    like($out, qr/dr_budget" of global per day is duplicate/,
        'a budget given twice is refused');
}

my $t = DR::Test->new(db => 1, no_start => 1, http => $conf);
my $dbh = $t->dbh;
my @domains = map { "shop$_.example" } 1 .. 5;
$dbh->do('INSERT INTO domains (domain, category) VALUES '
    . join(', ', map { "('$_', 'Retail')" } @domains));
$t->start;

my $admin = $t->create_key(tier => 'admin');
my $free = $t->create_key(tier => 'free');
sub admin { $t->keyed($admin, @_) }

sub budgets {
    my %b;
    for my $x (@{ admin('GET', '/admin/budgets')->{json}{budgets} // [] }) {
        $b{"$x->{scope}/$x->{period}"} = $x;
    }
    return \%b;
}

# --- the API's answers to bad input change nothing --------------------------

my @bad = (
    ['not json', qr/not valid JSON/],
    ['[1]', qr/JSON object/],
    ['{"scope": "global", "period": "day", "usd": 1, "x": 1}',
     qr/unknown field/],
    ['{"period": "day", "usd": 1}', qr/scope:/],
    ['{"scope": "all", "period": "day", "usd": 1}', qr/scope:/],
    ['{"scope": "provider:", "period": "day", "usd": 1}', qr/scope:/],
    ['{"scope": "provider:Open AI", "period": "day", "usd": 1}', qr/scope:/],
    ['{"scope": "global", "period": "week", "usd": 1}', qr/period:/],
    ['{"scope": "global", "usd": 1}', qr/period:/],
    ['{"scope": "global", "period": "day"}', qr/usd:/],
    ['{"scope": "global", "period": "day", "usd": -1}', qr/usd:/],
    ['{"scope": "global", "period": "day", "usd": "10"}', qr/usd:/],
    ['{"scope": "global", "period": "day", "usd": true}', qr/usd:/],
    ['{"scope": "global", "period": "day", "usd": 1e10}', qr/usd:/],
    ['{"scope": "global", "period": "day", "usd": 0.0000001}', qr/usd:/],
    ['{"scope": "provider:nosuch", "period": "day", "usd": 1}',
     qr/no model .* of this provider/],
);

for my $b (@bad) {
    my $r = admin('POST', '/admin/budgets', $b->[0]);
    is($r->{status}, 400, "POST /admin/budgets $b->[0]: 400");
    like($r->{json}{message} // '', $b->[1], '... saying why')
        or diag($r->{content});
    is($r->{json}{detail}, $r->{json}{message}, '... in detail too');
}

my $r = admin('POST', '/admin/budgets', '');
is($r->{status}, 400, 'no body: 400');
$r = $t->keyed($free, 'POST', '/admin/budgets',
    '{"scope": "global", "period": "day", "usd": 1}');
is($r->{status}, 403, 'a free key may not set a budget');
$r = $t->keyed($free, 'GET', '/admin/budgets');
is($r->{status}, 403, 'nor read them');
$r = admin('DELETE', '/admin/budgets');
is($r->{status}, 405, 'DELETE /admin/budgets: 405');

my ($rows) = $dbh->selectrow_array('SELECT count(*) FROM budgets');
is($rows, 0, 'none of them stored anything');

# --- the configuration's defaults, and rows that override them --------------

my $b = budgets();
is_deeply([sort keys %$b], ['provider:mistral/hour', 'provider:openai/month'],
    'GET /admin/budgets lists the configured defaults');
is($b->{'provider:openai/month'}{usd}, 50, 'with their dollars');
is($b->{'provider:openai/month'}{source}, 'configuration', 'and source');
is($b->{'provider:openai/month'}{spent}, 0, 'nothing spent');
like($b->{'provider:openai/month'}{window_start},
    qr/^\d{4}-\d\d-01T00:00:00Z$/, 'a month starts on the 1st, UTC');
like($b->{'provider:mistral/hour'}{window_end}, qr/:00:00Z$/,
    'an hour ends on the hour');

$r = admin('POST', '/admin/budgets',
    '{"scope": "provider:openai", "period": "month", "usd": 60.5}');
is($r->{status}, 200, 'a budget set over a default');
is_deeply([@{$r->{json}}{qw(scope period usd source spent reserved
    remaining)}], ['provider:openai', 'month', 60.5, 'database', 0, 0, 60.5],
    'answers the budget as it is now');
is(budgets()->{'provider:openai/month'}{source}, 'database',
    'the row overrides the default');

$r = admin('POST', '/admin/budgets',
    '{"scope": "global", "period": "day", "usd": 0.002}');
is($r->{status}, 200, 'a global daily budget of $0.002');
is($r->{json}{usd}, 0.002, 'of $0.002');
like($r->{json}{window_start}, qr/^\d{4}-\d\d-\d\dT00:00:00Z$/,
    'its day starts at midnight UTC');

# --- a run stops at its budget ----------------------------------------------

my $t0 = time;
$r = admin('POST', '/admin/runs', encode_json({ domains => \@domains }));
is($r->{status}, 202, 'a run of 5 domains');
my $run = $r->{json}{run_id};
my $jobs = $r->{json}{jobs};
is($jobs, 5 * 8 * 3, 'of 120 jobs');

my $p = {};
while (time < $t0 + 60) {
    $p = admin('GET', "/admin/runs/$run")->{json} // {};
    last if ($p->{status} // '') eq 'budget_exhausted';
    sleep 0.5;
}
is($p->{status}, 'budget_exhausted', 'within a minute the run reports '
    . 'budget_exhausted') or diag(explain($p));
is($p->{exhausted_budget}, 'global/day', 'naming the budget');
ok($p->{queued} + $p->{in_flight} > 0, 'with jobs still to do: '
    . "$p->{done} done, $p->{queued} queued");
ok($p->{cost} <= 0.002, "its cost is within the budget: $p->{cost}");

# a few rounds of deferred jobs later, nothing more is spent than allowed
sleep 12;
$p = admin('GET', "/admin/runs/$run")->{json};
# (a call small enough for what is left may still pass: the run is then
# running a moment, and exhausted again)
like($p->{status}, qr/^(budget_exhausted|running)$/,
    "still waiting for its budget, or spending what is left: $p->{status}");
isnt($p->{status}, 'done', 'not done: its budget holds it');
my ($stored) = $dbh->selectrow_array(
    'SELECT coalesce(sum(cost), 0) FROM responses WHERE run_id = ?', undef,
    $run);
ok($stored <= 0.002, "the answers stored cost at most \$0.002: $stored");
my ($spent, $reserved) = $dbh->selectrow_array(q{SELECT spent, reserved
    FROM budget_spend WHERE scope = 'global' AND period = 'day'});
ok($spent + $reserved <= 2000, "spent $spent + reserved $reserved "
    . 'micro-dollars: within the budget');
ok(sprintf('%.0f', $stored * 1e6) <= $spent,
    'what was spent covers what the stored answers cost');
my ($unfit, $attempts) = $dbh->selectrow_array(q{SELECT
    count(*) FILTER (WHERE status IN ('failed', 'dead')),
    coalesce(max(attempts) FILTER (WHERE status = 'queued'), 0)
    FROM jobs WHERE run_id = ?}, undef, $run);
is($unfit, 0, 'no job failed or died for the budget');
is($attempts, 0, 'the queued jobs spent no attempt');
my ($why) = $dbh->selectrow_array(q{SELECT last_error FROM jobs
    WHERE run_id = ? AND status = 'queued' LIMIT 1}, undef, $run);
like($why // '', qr/spend budget global per day .* is exhausted/,
    'a waiting job says why');
my $sent = $sim->stats(recent => 0)->{totals}{requests};
my ($answers) = $dbh->selectrow_array(
    'SELECT count(*) FROM responses WHERE run_id = ?', undef, $run);
is($sent, $answers, 'every call the simulator saw was an answer stored: '
    . 'none went without room in the budget');

# --- /metrics ---------------------------------------------------------------

my $m = '';

# the value of a budget's series in the last scrape
sub series {
    my ($name, $scope, $period) = @_;
    return $m =~ /^$name\{scope="\Q$scope\E",period="$period"\} ([\d.]+)$/m
         ? $1 : undef;
}

for (1 .. 40) {
    $m = $t->get('/metrics')->{content};
    last if (series('dr_budget_spent_dollars', 'global', 'day') // 0) > 0;
    sleep 0.25;
}
is(series('dr_budget_limit_dollars', 'global', 'day'), '0.002000',
    'metrics: the limit of the global daily budget');
my $mspent = series('dr_budget_spent_dollars', 'global', 'day');
ok(defined $mspent && $mspent > 0 && $mspent <= 0.002,
    'metrics: what it spent, within it: ' . ($mspent // 'none'));
is(series('dr_budget_limit_dollars', 'provider:openai', 'month'),
    '60.500000', 'metrics: a provider\'s budget, from its row');
is(series('dr_budget_limit_dollars', 'provider:mistral', 'hour'),
    '0.250000', 'metrics: a default of the configuration');
like($m, qr/^# TYPE dr_budget_reserved_dollars gauge$/m,
    'metrics: what the calls under way hold');

# --- the probe is held to the budgets too -----------------------------------

$r = admin('POST', '/admin/budgets',
    '{"scope": "global", "period": "day", "usd": 0}');
is($r->{json}{remaining}, 0, 'a budget of $0: nothing remains');
$sent = $sim->stats(recent => 0)->{totals}{requests};
$r = $t->http('POST', '/admin/probe', headers => { 'X-API-Key' => $admin },
    body => '{"domain": "shop1.example"}', timeout => 60);
is($r->{status}, 200, 'a probe at an exhausted budget answers');
my @ans = @{$r->{json}{answers} // []};
is(scalar @ans, 24, 'with its 24 answers');
is(scalar(grep { $_->{status} eq 'failed'
                 && $_->{error} =~ /spend budget global per day/ } @ans),
    24, 'each refused by the budget');
is($sim->stats(recent => 0)->{totals}{requests}, $sent,
    'and no call was sent');

# --- raised, the run finishes by itself -------------------------------------

$r = admin('POST', '/admin/budgets',
    '{"scope": "global", "period": "day", "usd": 100}');
is($r->{status}, 200, 'the budget raised to $100');
$t0 = time;
while (time < $t0 + 120) {
    $p = admin('GET', "/admin/runs/$run")->{json} // {};
    last if ($p->{status} // '') eq 'done';
    sleep 0.5;
}
is($p->{status}, 'done', 'the run finishes') or diag(explain($p));
is($p->{done}, $jobs, 'every job done');
is($p->{exhausted_budget}, undef, 'waiting for no budget');
($stored) = $dbh->selectrow_array(
    'SELECT sum(cost) FROM responses WHERE run_id = ?', undef, $run);
($spent, $reserved) = $dbh->selectrow_array(q{SELECT spent, reserved
    FROM budget_spend WHERE scope = 'global' AND period = 'day'});
is($spent, sprintf('%.0f', $stored * 1e6),
    'the global budget spent exactly what the answers cost');
is($reserved, 0, 'and holds nothing once the calls are done');
($attempts) = $dbh->selectrow_array(q{SELECT max(attempts) FROM jobs
    WHERE run_id = ?}, undef, $run);
is($attempts, 1, 'each job was sent once');
my ($oa) = $dbh->selectrow_array(q{SELECT sum(r.cost) FROM responses r
    JOIN models m ON m.id = r.model_id WHERE m.provider = 'openai'});
my ($os) = $dbh->selectrow_array(q{SELECT spent FROM budget_spend
    WHERE scope = 'provider:openai' AND period = 'month'});
is($os, sprintf('%.0f', $oa * 1e6), 'openai\'s budget spent its answers\' '
    . 'cost');

# --- the roll of a period ---------------------------------------------------

# google's hourly budget fits a few calls; when it is spent, the hour is
# made to end (the window's spend, and its answers, moved an hour back).
# Made in the middle of the hour, it starts from what google's answers
# of the hour already cost.
my ($google) = $dbh->selectrow_array(q{SELECT sum(r.cost) FROM responses r
    JOIN models m ON m.id = r.model_id WHERE m.provider = 'google'
    AND r.captured_at >= date_trunc('hour', now() AT TIME ZONE 'UTC')
        AT TIME ZONE 'UTC'});
$r = admin('POST', '/admin/budgets',
    '{"scope": "provider:google", "period": "hour", "usd": 0.0005}');
is($r->{json}{spent}, $google + 0, "a budget made mid-hour starts from the "
    . "hour's spend: $google");
$r = admin('POST', '/admin/runs', encode_json({ domains => \@domains,
    models => ['google/gemini-1.5-flash'] }));
my $run2 = $r->{json}{run_id};
is($r->{json}{jobs}, 15, 'a run of 15 google jobs');

my ($rolls, $most) = (0, 0);
$t0 = time;
while (time < $t0 + 150) {
    $p = admin('GET', "/admin/runs/$run2")->{json} // {};
    last if ($p->{status} // '') eq 'done';
    my ($s, $h) = $dbh->selectrow_array(q{SELECT spent, reserved
        FROM budget_spend WHERE scope = 'provider:google'
        AND period = 'hour' AND window_start
            = date_trunc('hour', now() AT TIME ZONE 'UTC')
              AT TIME ZONE 'UTC'});
    $most = $s + $h if $rolls && defined $s && $s + $h > $most;
    if ($p->{status} eq 'budget_exhausted' && defined $h && $h == 0) {
        $dbh->begin_work;
        $dbh->do(q{UPDATE budget_spend
            SET window_start = (SELECT min(window_start) FROM budget_spend
                WHERE scope = 'provider:google' AND period = 'hour')
                - interval '1 hour'
            WHERE scope = 'provider:google' AND period = 'hour'
              AND window_start = (SELECT max(window_start) FROM budget_spend
                WHERE scope = 'provider:google' AND period = 'hour')});
        $dbh->do(q{UPDATE responses SET captured_at = captured_at
            - interval '1 hour' WHERE model_id IN
            (SELECT id FROM models WHERE provider = 'google')});
        $dbh->commit;
        $rolls++;
    }
    sleep 0.5;
}
is($p->{status}, 'done', "after $rolls rolls of the hour the run is done")
    or diag(explain($p));
ok($rolls >= 1, 'it waited for the hour to roll at least once');
ok($most > 0 && $most <= 500, 'no hour after a roll spent or held more '
    . "than \$0.0005: at most $most");

# --- a dead worker's reservation expires, spent in full ---------------------

($spent) = $dbh->selectrow_array(q{SELECT spent FROM budget_spend
    WHERE scope = 'provider:mistral' AND period = 'hour'
    ORDER BY window_start DESC LIMIT 1});
$spent //= 0;
my ($hold) = $dbh->selectrow_array(q{SELECT hold FROM dr_budget_reserve(
    'mistral', 1234, 60000, NULL, '{provider:mistral}', '{hour}',
    '{0.25}')});
ok($hold, 'a reservation made, as by a worker that then died');
is(budgets()->{'provider:mistral/hour'}{reserved}, 0.001234,
    'it is held');
$dbh->do(q{UPDATE budget_holds SET expires_at = now() - interval '1 s'
    WHERE hold = ?}, undef, $hold);
my $x;
for (1 .. 40) {
    $x = budgets()->{'provider:mistral/hour'};
    last if $x->{reserved} == 0;
    sleep 0.25;
}
is($x->{reserved}, 0, 'expired, it is no longer held');
is(sprintf('%.0f', $x->{spent} * 1e6), $spent + 1234,
    'but spent in full: the call may have been billed');

$t->stop;
$sim->stop;

done_testing;

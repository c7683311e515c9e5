# Events and jolts, end to end against the provider simulator: an event of
# severity high (dr_jolt_severity's default) queues a run of the jolt
# prompts at once, naming the event, and plans three more (1, 7 and 30
# days later) that the first worker makes when due; a lower one changes
# nothing but the list.  The simulated models told of a rebrand answer
# under the new name, so GET /api/jolt-benchmark/{domain} shows memory
# fall from before the event to after it.  Bad events are refused with
# the field at fault and store nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::OpenAPI;
use DR::Test;
use JSON::PP;
use Test::More;

my $sim = DR::Sim->start(latency_ms => 20, seed => 5, know_all => 1);

my $t = DR::Test->new(db => 1, no_start => 1,
                      http => $sim->crawler_conf(rpm => 600, api => 1));
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category)
           VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($admin, @_) }
sub count { ($dbh->selectrow_array($_[0], undef, @_[1 .. $#_]))[0] }

# a regular run first: the baseline before any event
my $r = admin('POST', '/admin/runs',
               encode_json({ domains => ['stripe.com'] }));
is($r->{status}, 202, 'a run of stripe.com');
is($r->{json}{jobs}, 8 * 3, 'every model, the three standard prompts only');
is($t->wait_run($r->{json}{run_id}, 300), 'done', 'and it ends');
ok(DR::Test::wait_for(sub {
    count('SELECT count(*) FROM domain_scores WHERE run_id = ?',
          $r->{json}{run_id}) == 1 }, 60, 0.25), 'and is scored');
my $baseline = $r->{json}{run_id};

my ($now) = $dbh->selectrow_array(q{SELECT to_char(now() AT TIME ZONE 'UTC',
    'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')});

# bad events: 400 with the field at fault, nothing stored
my %good = (domain => 'stripe.com', occurred_at => $now, kind => 'rebrand',
            severity => 'high', title => 'Stripe is now Zenpay');
for my $bad ([{ %good, kind => 'merger' }, 'kind'],
             [{ %good, severity => 'huge' }, 'severity'],
             [{ %good, occurred_at => '2026-02-30T00:00:00Z' }, 'occurred_at'],
             [{ %good, occurred_at => 'yesterday' }, 'occurred_at'],
             [{ %good, occurred_at => '2999-01-01T00:00:00Z' }, 'occurred_at'],
             [{ %good, title => '' }, 'title'],
             [{ %good, title => "a\nb" }, 'title'],
             [{ %good, title => 'x' x 301 }, 'title'],
             [{ %good, url => 'ftp://news.example.com/a' }, 'url'],
             [{ %good, url => 'javascript:alert(1)' }, 'url'],
             [{ %good, url => 'https://user@news.example.com/' }, 'url'],
             [{ %good, domain => 'bad_domain' }, 'domain'],
             [{ %good, colour => 'red' }, 'unknown field'],
             [{ %good, severity => undef }, 'severity']) {
    $r = admin('POST', '/admin/events', encode_json($bad->[0]));
    is($r->{status}, 400, "a bad event ($bad->[1]): 400");
    like($r->{json} && $r->{json}{message}, qr/\Q$bad->[1]\E/,
        "and it says $bad->[1]");
}
$r = admin('POST', '/admin/events', '{"domain": "stripe.com", ');
is($r->{status}, 400, 'malformed JSON: 400');
$r = admin('POST', '/admin/events',
           encode_json({ %good, domain => 'nobody.example' }));
is($r->{status}, 404, 'an unknown domain: 404');
is(count('SELECT count(*) FROM events'), 0, 'no bad event was stored');
is(count(q{SELECT count(*) FROM runs WHERE kind = 'jolt'}), 0,
   'and no run made');

# an event below the threshold, 100 days ago: listed, nothing queued
my ($ago, $ago_utc) = $dbh->selectrow_array(q{
    SELECT to_char(t AT TIME ZONE 'Etc/GMT-2',
                   'YYYY-MM-DD"T"HH24:MI:SS"+02:00"'),
           to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    FROM (SELECT date_trunc('second', now() - interval '100 days') t) x});
$r = admin('POST', '/admin/events', encode_json({ domain => 'stripe.com',
    occurred_at => $ago, kind => 'news',
    severity => 'medium', title => 'Stripe opens an office in Paris',
    url => 'https://news.example.com/stripe-paris?ref=FAKE' }));
is($r->{status}, 201, 'a medium event is recorded');
is($r->{json}{jolt}, JSON::PP::false, 'it does not jolt');
is($r->{json}{run_id}, undef, 'and queues no run');
is($r->{json}{occurred_at}, $ago_utc, 'its time in UTC');
is(count('SELECT count(*) FROM jolt_runs'), 0, 'no jolt run planned');

# the rebrand, high: a jolt run at once, three more planned
$r = admin('POST', '/admin/events', encode_json({ %good,
    url => 'https://news.example.com/zenpay' }));
is($r->{status}, 201, 'a high event is recorded');
is($r->{json}{jolt}, JSON::PP::true, 'it jolts');
my $jolt = $r->{json}{run_id};
ok($jolt, 'and queued a run at once');
my $event = $r->{json}{id};

is_deeply($dbh->selectcol_arrayref(q{SELECT after_days FROM jolt_runs
    WHERE event_id = ? ORDER BY 1}, undef, $event), [0, 1, 7, 30],
    'runs planned at once and after 1, 7 and 30 days');
is(count(q{SELECT count(*) FROM jolt_runs WHERE event_id = ?
           AND after_days > 0 AND made_at IS NULL
           AND due_at BETWEEN now() + (after_days - 0.01) * interval '1 day'
                          AND now() + after_days * interval '1 day'},
         $event), 3, 'the later three due 1, 7 and 30 days on, not made');
is(count(q{SELECT count(*) FROM runs WHERE id = ? AND kind = 'jolt'},
         $jolt), 1, 'the run is a jolt run');
is_deeply($dbh->selectcol_arrayref(q{SELECT DISTINCT p.name FROM jobs j
    JOIN prompts p ON p.id = j.prompt_id WHERE j.run_id = ? ORDER BY 1},
    undef, $jolt), ['brand_memory_analysis', 'market_intelligence'],
    'of the jolt prompts only');
is(count('SELECT count(*) FROM jobs WHERE run_id = ?', $jolt), 8 * 2,
   'asked of every model');
is(count(q{SELECT count(*) FROM admin_audit WHERE action = 'event.create'
           AND target = 'stripe.com'}), 2, 'both events are audited');

is($t->wait_run($jolt, 300), 'done', 'the jolt run ends');
is(count(q{SELECT count(*) FROM responses WHERE run_id = ?
           AND prompt_text LIKE '%rebrand: Stripe is now Zenpay%'}, $jolt),
   16, 'each of its prompts named the event');
my $renamed = count(q{SELECT count(DISTINCT model_id) FROM responses
    WHERE run_id = ? AND answer LIKE '%Zenpay%'
      AND answer NOT ILIKE '%stripe%'}, $jolt);
ok($renamed > 0 && $renamed < 8,
   "some models answer under the new name ($renamed of 8)");

ok(DR::Test::wait_for(sub {
    count('SELECT count(*) FROM domain_scores WHERE run_id = ?', $jolt) == 1
}, 60, 0.25), 'the jolt run is scored');

$r = $t->get('/api/jolt-benchmark/stripe.com');
is($r->{status}, 200, 'the jolt benchmark');
DR::OpenAPI::response_ok('GET', '/api/jolt-benchmark/{domain}', 200,
    $r->{json}, 'it matches the OpenAPI schema');
my $b = $r->{json};
is($b->{domain}, 'stripe.com', 'of the domain');
is($b->{jolt}, JSON::PP::true, 'marked jolt while its runs are planned');
is_deeply($b->{windows}, { before_days => 30, after_days => 31 },
    'with its windows');
is(scalar @{ $b->{events} }, 2, 'both events, oldest first');
my ($old, $e) = @{ $b->{events} };
is($old->{before}{runs}, 0, 'nothing before the old event');
is($old->{change}{memory_score}, undef, 'so no change is attributed to it');
is($e->{id}, $event, 'the rebrand');
is($e->{before}{runs}, 1, 'one run before it');
is($e->{before}{memory_score}, 100, 'remembered by every model before');
is($e->{after}{runs}, 1, 'one run after it');
ok($e->{after}{memory_score} < 100, 'less after it')
    or diag(explain($e));
is($e->{change}{memory_score},
   sprintf('%.1f', $e->{after}{memory_score} - 100) + 0,
   'the change is after minus before');
is($e->{runs_after}[0]{run_id}, $jolt, 'the run after it is the jolt run');
is($e->{runs_after}[0]{jolt_run}, JSON::PP::true, 'said so');
ok(defined $e->{before}{sentiment} && defined $e->{after}{drift},
   'sentiment and drift before and after');

is_deeply($t->get('/api/jolt-benchmark/github.com')->{json}{events}, [],
   'a domain without events has none');
is($t->get('/api/jolt-benchmark/nobody.example')->{status}, 404,
   'an unknown domain: 404');
is($t->get('/api/jolt-benchmark/bad_domain')->{status}, 400,
   'a malformed domain: 400');

# the time series lists the events of its days, beside its points
$r = $t->get('/api/time-series/stripe.com');
is($r->{status}, 200, 'the time series');
DR::OpenAPI::response_ok('GET', '/api/time-series/{domain}', 200,
    $r->{json}, 'it matches the OpenAPI schema');
is_deeply([map { $_->{id} } @{ $r->{json}{events} }], [$event],
    'with the events of its 30 days');
is($r->{json}{events}[0]{kind}, 'rebrand', 'each with its kind');
is(scalar @{ $r->{json}{points} }, 1,
   'and its points as before: the jolt run is none of them');

# a jolt run is no point of the regular series: the latest scores the
# public reads, the trends and the tribes stay those of the regular runs
is(count(q{SELECT run_id FROM latest_scores WHERE domain = 'stripe.com'}),
   $baseline, 'the latest scores are those of the regular run');
is(count(q{SELECT count(*) FROM regular_domain_scores WHERE run_id = ?},
         $jolt), 0, 'which the regular series leaves the jolt run out of');
is(count(q{SELECT count(*) FROM tribe_scores WHERE run_id = ?}, $jolt), 0,
   'as the tribes do');
is(scalar(grep { $_->{domain} eq 'stripe.com' } @{
       $t->get('/api/trends/degradation?runs=2')->{json}{domains} // [] }),
   0, 'and the trends');
is_deeply([sort keys %{ $r->{json}{points}[0] }],
    [qw(ai_consensus date memory_score response_count)],
    'whose fields are unchanged');
is(scalar @{ $t->get('/api/time-series/stripe.com?days=365')
             ->{json}{events} }, 2, 'older events with more days');

# the list
$r = admin('GET', '/admin/events?domain=stripe.com');
is($r->{status}, 200, 'the events of a domain');
is($r->{json}{count}, 2, 'both');
is($r->{json}{events}[0]{id}, $event, 'newest first');
is(scalar @{ $r->{json}{events}[0]{jolt_runs} }, 4, 'with its jolt runs');
is($r->{json}{events}[0]{jolt_runs}[0]{run_id}, $jolt, 'the first made');
is($r->{json}{events}[0]{url}, 'https://news.example.com/zenpay',
   'and its link');
is(admin('GET', '/admin/events?domain=github.com')->{json}{count}, 0,
   'none of another domain');
is(admin('GET', '/admin/events?domain=bad_domain')->{status}, 400,
   'a malformed domain: 400');
is(admin('GET', '/admin/events')->{json}{count}, 2, 'all of them');

# a day on: the first worker makes the run due, once
$dbh->do(q{UPDATE jolt_runs SET due_at = now()
           WHERE event_id = ? AND after_days = 1}, undef, $event);
ok(DR::Test::wait_for(sub {
    count(q{SELECT count(*) FROM jolt_runs WHERE event_id = ?
            AND after_days = 1 AND run_id IS NOT NULL}, $event) == 1
}, 180, 0.5), 'the run due a day later is made when due');
my $second = count(q{SELECT run_id FROM jolt_runs WHERE event_id = ?
                     AND after_days = 1}, $event);
is($t->wait_run($second, 300), 'done', 'and ends');
ok(DR::Test::wait_for(sub {
    count('SELECT count(*) FROM domain_scores WHERE run_id = ?', $second)
        == 1 }, 60, 0.25), 'and is scored');
is(count(q{SELECT count(*) FROM runs WHERE kind = 'jolt'}), 2,
   'two jolt runs in all: the plans of 7 and 30 days wait');
my ($drift) = $dbh->selectrow_array(q{SELECT details->'drift'
    FROM domain_scores WHERE run_id = ?}, undef, $second);
like($drift, qr/brand_memory_analysis/,
     'its drift is against the jolt run before it, prompt by prompt');
$r = $t->get('/api/jolt-benchmark/stripe.com');
is(scalar @{ $r->{json}{events}[1]{runs_after} }, 2,
   'the benchmark has both runs after the event');

# a link's scheme in capitals is a link, stored as the scheme is written
# in lower case
$r = admin('POST', '/admin/events', encode_json({ domain => 'github.com',
    occurred_at => $now, kind => 'news', severity => 'low',
    title => 'A link in capitals', url => 'HTTPS://News.Example.com/A' }));
is($r->{status}, 201, 'a link whose scheme is in capitals: 201');
is($r->{json}{url}, 'https://News.Example.com/A', 'its scheme lower-cased');
$r = admin('POST', '/admin/events', encode_json({ domain => 'github.com',
    occurred_at => $now, kind => 'news', severity => 'low',
    title => 'Another', url => 'Http://news.example.com/b' }));
is($r->{status}, 201, 'and in mixed case');

# a severe event of long ago is history: recorded, no run planned
my $runs = count('SELECT count(*) FROM runs');
$r = admin('POST', '/admin/events', encode_json({ domain => 'github.com',
    occurred_at => $ago, kind => 'crisis', severity => 'critical',
    title => 'An outage of long ago' }));
is($r->{status}, 201, 'a critical event of 100 days ago is recorded');
is($r->{json}{jolt}, JSON::PP::false, 'it does not jolt');
is($r->{json}{run_id}, undef, 'and queues no run');
is(count('SELECT count(*) FROM runs'), $runs, 'no run was made');

$t->stop;

done_testing;

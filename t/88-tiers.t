# Tiered crawls: domains in the core, rotating (30 days, then regular) and
# regular sets, each tier asking its models and prompts, in scheduled
# runs and in runs of POST /admin/runs; a domain in no tier is crawled in
# full.  A dry run of POST /admin/runs answers its jobs and estimated cost
# and queues nothing.  Bad tier requests change nothing.  And the runs an
# event queues are not those of the tiers, from dr_jolt_severity up.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use JSON::PP;
use POSIX qw(floor);
use Test::More;

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_schedule 2s;
    dr_jolt_severity critical;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category)
           VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech'),
                  ('notion.so', 'Tech'), ('adyen.com', 'Finance'),
                  ('wise.com', 'Finance')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($admin, @_) }
sub count { ($dbh->selectrow_array($_[0], undef, @_[1 .. $#_]))[0] }

# the defaults
my $r = admin('GET', '/admin/tiers');
is($r->{status}, 200, 'the tiers');
my %tier = map { $_->{name} => $_ } @{ $r->{json}{tiers} };
is_deeply([map { $_->{name} } @{ $r->{json}{tiers} }],
    [qw(core rotating regular)], 'core, rotating, regular');
is(scalar @{ $tier{core}{models} }, 8, 'core asks every model');
is_deeply($tier{core}{prompts},
    [qw(business_analysis content_strategy technical_assessment)],
    'and every standard prompt (no jolt prompt)');
is($tier{core}{all_models}, JSON::PP::true, 'as "all"');
is_deeply($tier{regular}{models}, ['google/gemini-1.5-flash',
    'mistral/mistral-small-latest', 'openai/gpt-4o-mini', 'xai/grok-3-mini'],
    'regular asks the cheap models');
is_deeply($tier{regular}{prompts}, ['business_analysis'], 'one prompt');
is($r->{json}{untiered_domains}, 5, 'no domain in a tier yet');

# domains into tiers
for my $a ([['stripe.com'], 'core'], [['GitHub.com', 'nobody.example'],
           'regular'], [['notion.so', 'adyen.com'], 'rotating']) {
    $r = admin('POST', '/admin/tiers/domains',
               encode_json({ domains => $a->[0], tier => $a->[1] }));
    is($r->{status}, 200, "domains into $a->[1]");
}
is($r->{json}{assigned}, 2, 'two into rotating');
like($r->{json}{expires_at}, qr/^\d{4}-\d\d-\d\dT/, 'until a time');
$r = admin('POST', '/admin/tiers/domains', encode_json({
    domains => ['github.com', 'nobody.example'], tier => 'regular' }));
is_deeply($r->{json}{unknown}, ['nobody.example'], 'an unknown one is said');
is(count(q{SELECT count(*) FROM domain_tiers t JOIN domains d
           ON d.id = t.domain_id WHERE d.domain = 'notion.so'
           AND t.expires_at BETWEEN now() + interval '29 days'
                                AND now() + interval '30 days'}), 1,
   'rotating for 30 days');
# adyen.com's 30 days are over: it is regular again
$dbh->do(q{UPDATE domain_tiers SET expires_at = now() - interval '1 s'
           WHERE domain_id = (SELECT id FROM domains
                              WHERE domain = 'adyen.com')});

$r = admin('GET', '/admin/tiers');
%tier = map { $_->{name} => $_ } @{ $r->{json}{tiers} };
is_deeply([map { $tier{$_}{domains} } qw(core rotating regular)], [1, 1, 2],
    'core 1, rotating 1, regular 2 (one whose rotation ended)');
is($r->{json}{untiered_domains}, 1, 'wise.com in none');

# bad requests change nothing
for my $bad (['/admin/tiers/domains', { domains => ['a.com'],
               tier => 'platinum' }, 'tier'],
             ['/admin/tiers/domains', { domains => ['bad_domain'],
               tier => 'core' }, 'domains'],
             ['/admin/tiers/domains', { domains => [], tier => 'core' },
              'domains'],
             ['/admin/tiers/domains', { tier => 'core' }, 'domains'],
             ['/admin/tiers', { tier => 'gold' }, 'tier'],
             ['/admin/tiers', { tier => 'regular', models => ['nope'] },
              'no active model is named "nope"'],
             ['/admin/tiers', { tier => 'regular',
               prompts => ['brand_memory_analysis'] },
              'no active standard prompt'],
             ['/admin/tiers', { tier => 'regular', models => [] },
              'models'],
             ['/admin/tiers', { tier => 'regular', models => 'sonar' },
              'models'],
             ['/admin/tiers', { tier => 'core', cost => 1 },
              'unknown field']) {
    $r = admin('POST', $bad->[0], encode_json($bad->[1]));
    is($r->{status}, 400, "bad $bad->[0] ($bad->[2]): 400");
    like($r->{json} && $r->{json}{message}, qr/\Q$bad->[2]\E/,
         "and it says $bad->[2]");
}
is(count('SELECT count(*) FROM tier_models'), 4, 'the tiers are unchanged');
is(count('SELECT count(*) FROM tier_prompts'), 1, 'and their prompts');

# a dry run: what the run would be and cost; nothing queued
$r = admin('POST', '/admin/runs', '{"dry_run": true}');
is($r->{status}, 200, 'a dry run: 200');
is($r->{json}{dry_run}, JSON::PP::true, 'said to be one');
# core 24 + rotating 24 + regular 2 x 4 + none 24
is($r->{json}{jobs}, 24 + 24 + 4 + 4 + 24, '80 jobs by the tiers');
is($r->{json}{domains}, 5, 'of 5 domains');

# the estimate, recomputed: a prompt at 4 bytes a token and 32 of frame,
# 600 tokens of answer (no answer stored yet); at most what the budgets
# reserve: a token a byte
my %price = map { $_->[0] => [$_->[1], $_->[2]] } @{ $dbh->selectall_arrayref(
    q{SELECT provider || '/' || model, input_price_mtok, output_price_mtok
      FROM models WHERE active}) };
my %tpl = map { @$_ } @{ $dbh->selectall_arrayref(
    q{SELECT name, template FROM prompts WHERE kind = 'standard'}) };
my @all_m = sort keys %price;
my @cheap = @{ $tier{regular}{models} };
my @all_p = sort keys %tpl;
my %plan = ('stripe.com' => [\@all_m, \@all_p],
            'notion.so' => [\@all_m, \@all_p],
            'wise.com' => [\@all_m, \@all_p],
            'github.com' => [\@cheap, ['business_analysis']],
            'adyen.com' => [\@cheap, ['business_analysis']]);
my ($est, $max, $jobs) = (0, 0, 0);
for my $d (sort keys %plan) {
    for my $m (@{ $plan{$d}[0] }) {
        for my $p (@{ $plan{$d}[1] }) {
            my $bytes = length($tpl{$p} =~ s/\{domain\}/$d/gr);
            my $in = floor(($bytes + 3) / 4) + 32;
            $est += $in * $price{$m}[0] + 600 * $price{$m}[1];
            $max += ($bytes + 32) * $price{$m}[0] + 600 * $price{$m}[1];
            $jobs++;
        }
    }
}
is($jobs, 80, 'the plan has 80 calls');
ok(abs($r->{json}{estimated_cost} - $est / 1e6) < 1e-6,
   "estimated cost \$$r->{json}{estimated_cost}")
    or diag("expected " . $est / 1e6);
ok(abs($r->{json}{max_cost} - $max / 1e6) < 1e-6,
   "at most \$$r->{json}{max_cost}, what the budgets would reserve")
    or diag("expected " . $max / 1e6);
ok($r->{json}{max_cost} >= $r->{json}{estimated_cost}, 'at least the estimate');
is(count(q{SELECT count(*) FROM runs WHERE kind = 'on_demand'}), 0,
   'no run was made');
is(count(q{SELECT count(*) FROM admin_audit WHERE action = 'run.create'}), 0,
   'none audited');

$r = admin('POST', '/admin/runs', encode_json({ domains => ['github.com'],
    models => ['sonar'], dry_run => JSON::PP::true }));
is($r->{json}{jobs}, 1, 'models given replace the tier\'s; its one prompt');
is(admin('POST', '/admin/runs', '{"dry_run": "yes"}')->{status}, 400,
   'dry_run must be true or false');
$r = admin('POST', '/admin/runs', encode_json({ domains => ['nobody.example'],
    dry_run => JSON::PP::true }));
is($r->{status}, 400, 'a dry run of nothing is refused as the run is');
is($r->{json}{error}, 'nothing_to_run', '... nothing_to_run');

# a real run: the same jobs the dry run counted
$r = admin('POST', '/admin/runs', '{}');
is($r->{status}, 202, 'a run');
is($r->{json}{jobs}, 80, 'of the 80 jobs');
is(count(q{SELECT count(*) FROM jobs j JOIN domains d ON d.id = j.domain_id
           WHERE j.run_id = ? AND d.domain = 'github.com'},
         $r->{json}{run_id}), 4, 'github.com: the 4 cheap models, 1 prompt');

# a tier's models and prompts
$r = admin('POST', '/admin/tiers', encode_json({ tier => 'regular',
    models => ['sonar', 'openai/gpt-4o-mini'],
    prompts => ['business_analysis', 'content_strategy'] }));
is($r->{status}, 200, 'the regular tier set');
%tier = map { $_->{name} => $_ } @{ $r->{json}{tiers} };
is_deeply($tier{regular}{models}, ['openai/gpt-4o-mini', 'perplexity/sonar'],
    'to its new models');
is_deeply($tier{regular}{prompts}, ['business_analysis', 'content_strategy'],
    'and prompts');
$r = admin('POST', '/admin/runs', encode_json({ domains => ['github.com'],
    dry_run => JSON::PP::true }));
is($r->{json}{jobs}, 4, 'a run of github.com is now 2 x 2 jobs');
$r = admin('POST', '/admin/tiers', encode_json({ tier => 'regular',
    models => undef }));
%tier = map { $_->{name} => $_ } @{ $r->{json}{tiers} };
is(scalar @{ $tier{regular}{models} }, 8, 'null: every model');
is_deeply($tier{regular}{prompts}, ['business_analysis', 'content_strategy'],
    'the prompts untouched');
is(count(q{SELECT count(*) FROM admin_audit WHERE action = 'tier.set'}), 2,
   'the changes are audited');
ok(count(q{SELECT count(*) FROM admin_audit
           WHERE action = 'tier.assign'}) >= 3, 'and the assignments');

# the scheduled run follows the tiers
my $last = count(q{SELECT coalesce(max(id), 0) FROM runs
                   WHERE kind = 'scheduled'});
my $sched;
ok(DR::Test::wait_for(sub {
    $sched = count(q{SELECT min(id) FROM runs WHERE kind = 'scheduled'
                     AND id > ?}, $last);
    defined $sched }, 60, 0.25), 'a scheduled run after the changes');
my %per = map { @$_ } @{ $dbh->selectall_arrayref(q{SELECT d.domain,
    count(*) FROM jobs j JOIN domains d ON d.id = j.domain_id
    WHERE j.run_id = ? GROUP BY 1}, undef, $sched) };
is_deeply(\%per, { 'stripe.com' => 24, 'notion.so' => 24, 'wise.com' => 24,
                   'github.com' => 16, 'adyen.com' => 16 },
    'asks each domain what its tier asks');

# out of every tier: crawled in full
$r = admin('POST', '/admin/tiers/domains', encode_json({
    domains => ['github.com'], tier => undef }));
is($r->{status}, 200, 'a domain out of its tier');
is($r->{json}{tier}, undef, 'in none');
$r = admin('POST', '/admin/runs', encode_json({ domains => ['github.com'],
    dry_run => JSON::PP::true }));
is($r->{json}{jobs}, 24, 'and asked everything again');

# with dr_jolt_severity critical, a high event queues nothing; a critical
# one queues a run of the jolt prompts of every model, whatever the tier
my %event = (domain => 'github.com',
             occurred_at => POSIX::strftime('%Y-%m-%dT%H:%M:%SZ',
                                            gmtime(time - 3600)),
             kind => 'crisis', title => 'An outage of FAKE services');
$r = admin('POST', '/admin/events', encode_json({ %event,
    severity => 'high' }));
is($r->{status}, 201, 'a high event');
is($r->{json}{jolt}, JSON::PP::false, 'below dr_jolt_severity critical');
$r = admin('POST', '/admin/events', encode_json({ %event,
    severity => 'critical' }));
is($r->{json}{jolt}, JSON::PP::true, 'a critical one jolts');
is(count('SELECT count(*) FROM jobs WHERE run_id = ?', $r->{json}{run_id}),
   8 * 2, 'its run asks every model the two jolt prompts');

# models set at once for one tier: one request's set is kept whole
my @models = ('google/gemini-1.5-flash', 'mistral/mistral-small-latest',
              'openai/gpt-4o-mini', 'xai/grok-3-mini');
my @pids;
for my $m (@models) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        admin('POST', '/admin/tiers', encode_json({ tier => 'rotating',
            models => [ $m ] }));
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;
my %now = map { $_->{name} => $_ }
    @{ admin('GET', '/admin/tiers')->{json}{tiers} };
is(scalar @{ $now{rotating}{models} }, 1,
   'four sets posted at once: the tier keeps one of them')
    or diag("@{ $now{rotating}{models} }");

$t->stop;

done_testing;

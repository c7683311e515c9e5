# Trends of memory and the provider tribes, end to end: two runs against
# the simulator in which one brand is forgotten and then remembered and
# another the other way round; GET /api/trends/degradation and
# /improvement rank them by the change of their stored memory scores,
# and the rich stats, rankings and domain set the search-enhanced tribe
# (Perplexity) beside the base models, each figure recomputed here from
# the stored verdicts per model.  Bad parameters are refused.

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use List::Util qw(sum);
use lib "$FindBin::Bin/lib";
use DR::OpenAPI;
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;

my $dir = tempdir(CLEANUP => 1);
my $forget = "$dir/forget.txt";
sub forget {
    open my $fh, '>', $forget or die;
    print $fh map { "$_\n" } @_;
    close $fh;
}
forget('notion.so');

my $sim = DR::Sim->start(latency_ms => 5, seed => 3, know_all => 1,
                         forget_file => $forget);
my $t = DR::Test->new(db => 1, no_start => 1,
                      http => $sim->crawler_conf(rpm => 600, api => 1,
                                                 cache => 1));
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category)
           VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech'),
                  ('notion.so', 'Tech')});
$t->start;

my $admin = $t->create_key(tier => 'admin');

sub crawl {
    my $r = $t->keyed($admin, 'POST', '/admin/runs', '{}');
    my $run = $r->{json}{run_id};
    is($t->wait_run($run, 300), 'done', "run $run crawled");
    DR::Test::wait_for(sub {
        $dbh->selectrow_array(
            'SELECT count(*) FROM domain_scores WHERE run_id = ?',
            undef, $run) == 3;
    }, 60);
    return $run;
}

my $run1 = crawl();
forget('github.com');
my $run2 = crawl();

my %mem;
for my $row (@{ $dbh->selectall_arrayref(q{SELECT d.domain, s.run_id,
    s.memory_score FROM domain_scores s JOIN domains d ON d.id = s.domain_id})
}) {
    $mem{ $row->[0] }{ $row->[1] } = $row->[2];
}
cmp_ok($mem{'github.com'}{$run2}, '<', $mem{'github.com'}{$run1},
       'github.com was forgotten in the second run');
cmp_ok($mem{'notion.so'}{$run2}, '>', $mem{'notion.so'}{$run1},
       'notion.so was remembered in the second run');

sub r1 { sprintf('%.1f', $_[0]) + 0 }

# trends
my $deg = $t->get('/api/trends/degradation');
is($deg->{status}, 200, 'GET /api/trends/degradation');
DR::OpenAPI::response_ok('GET', '/api/trends/degradation', $deg->{status},
    $deg->{content}, '... as the OpenAPI document says');
is($deg->{json}{direction}, 'degradation', 'its direction');
is($deg->{json}{runs}, 5, 'over the last 5 runs by default');
is_deeply([map { $_->{domain} } @{ $deg->{json}{domains} }], ['github.com'],
          'the domain whose memory fell, alone');
my $g = $deg->{json}{domains}[0];
is_deeply([@$g{qw(current_score start_score change runs)}],
          [r1($mem{'github.com'}{$run2}), r1($mem{'github.com'}{$run1}),
           r1($mem{'github.com'}{$run2} - $mem{'github.com'}{$run1}), 2],
          'its scores, change and runs as stored');

my $imp = $t->get('/api/trends/improvement?runs=2&limit=10');
is($imp->{status}, 200, 'GET /api/trends/improvement');
DR::OpenAPI::response_ok('GET', '/api/trends/improvement', $imp->{status},
    $imp->{content}, '... as the OpenAPI document says');
is_deeply([map { $_->{domain} } @{ $imp->{json}{domains} }], ['notion.so'],
          'the domain whose memory rose');
is($imp->{json}{domains}[0]{change},
   r1($mem{'notion.so'}{$run2} - $mem{'notion.so'}{$run1}), 'its change');
is($t->get('/api/trends/improvement?limit=1&_t=1')->{status}, 200,
   'an unknown parameter is ignored');

for my $bad ('runs=1', 'runs=51', 'runs=x', 'limit=0', 'limit=101',
             'runs=2&runs=3') {
    my $r = $t->get("/api/trends/degradation?$bad");
    is($r->{status}, 400, "$bad: 400");
    is($r->{json}{error}, 'invalid_parameter', '... invalid_parameter');
}

# the tribes, recomputed from each domain's latest verdicts per model
my %latest;
for my $row (@{ $dbh->selectall_arrayref(q{SELECT d.domain, s.details::text
    FROM latest_domain_scores s JOIN domains d ON d.id = s.domain_id}) }) {
    my $models = decode_json($row->[1])->{models};
    my %tr;
    for my $m (keys %$models) {
        my $tribe = $m =~ m{^perplexity/} ? 'search' : 'base';
        push @{ $tr{$tribe}{rec} }, $models->{$m}{recognized} ? 1 : 0;
        push @{ $tr{$tribe}{sent} }, $models->{$m}{sentiment}
            if $models->{$m}{valid};
    }
    for my $tribe (keys %tr) {
        my $x = $tr{$tribe};
        $x->{models} = @{ $x->{rec} };
        $x->{memory} = 100 * sum(@{ $x->{rec} }) / $x->{models};
        $x->{sentiment} = @{ $x->{sent} || [] }
            ? sum(@{ $x->{sent} }) / @{ $x->{sent} } : undef;
    }
    $latest{ $row->[0] } = \%tr;
}

my $rich = $t->get('/api/domains/github.com/rich');
is($rich->{status}, 200, 'GET /api/domains/github.com/rich');
DR::OpenAPI::response_ok('GET', '/api/domains/{domain}/rich', $rich->{status},
    $rich->{content}, '... as the OpenAPI document says');
my $x = $latest{'github.com'};
is($rich->{json}{tribes}{search}{models}, 1, 'one search-enhanced model');
is($rich->{json}{tribes}{base}{models}, 7, 'seven base models');
is($rich->{json}{tribes}{$_}{memory}, r1($x->{$_}{memory}),
   "$_ tribe memory") for qw(search base);
is($rich->{json}{information_asymmetry},
   r1($x->{search}{memory} - $x->{base}{memory}),
   'information asymmetry: search memory - base memory');
if (defined $x->{search}{sentiment} && defined $x->{base}{sentiment}) {
    cmp_ok(abs($rich->{json}{tribal_divergence}
               - 50 * abs($x->{search}{sentiment} - $x->{base}{sentiment})),
           '<=', 0.051, 'tribal divergence: 50 x the gap in sentiment');
} else {
    ok(!defined $rich->{json}{tribal_divergence},
       'no divergence without sentiment in both tribes');
}
# github.com was known by both tribes in run 1: neither lags
is($rich->{json}{memory_lag}, 0, 'memory lag: both tribes at once');
is(scalar @{ $rich->{json}{tribe_history} }, 4,
   'the tribes of its two runs');
is($t->get('/api/domains/unknown-brand.com/rich')->{status}, 404,
   'an unknown domain: 404');

# memory lag: runs written by hand in which the search tribe recognizes a
# new brand two runs before the base models do
$dbh->do(q{INSERT INTO domains (domain, category) VALUES ('lag.example',
    'Tech')});
my $base_model = $dbh->selectrow_array(q{SELECT provider || '/' || model
    FROM models WHERE tribe = 'base' ORDER BY id LIMIT 1});
my $n = 0;
for my $base_knows (0, 0, 1) {
    my ($run) = $dbh->selectrow_array(q{INSERT INTO runs (kind, scope,
        status, total_jobs) VALUES ('on_demand', '{}', 'done', 0)
        RETURNING id});
    my $details = encode_json({ models => {
        'perplexity/sonar' => { recognized => JSON::PP::true, valid => 1,
                                sentiment => 0.5 },
        $base_model => { recognized => $base_knows ? JSON::PP::true
                                                   : JSON::PP::false,
                         valid => 1, sentiment => -0.5 } } });
    $dbh->do(q{INSERT INTO domain_scores (domain_id, run_id, memory_score,
        ai_consensus, cohesion, drift_score, trend, volatility, score,
        models_positive, models_neutral, models_negative, models_tracking,
        response_count, reputation_risk, risk_level, details, computed_at)
        SELECT id, ?, ?, 50, 50, 0, 0, 0, 50, 1, 0, 1, 2, 2, 0, 'low', ?,
        now() - make_interval(mins => ?) FROM domains
        WHERE domain = 'lag.example'}, undef, $run, $base_knows ? 100 : 50,
        $details, 10 - $n++);
}
$dbh->do("NOTIFY dr_scores, 'INSERT'");
my $lag = $t->get('/api/domains/lag.example/rich');
is($lag->{json}{memory_lag}, 2,
   'memory lag: the base models recognized it two runs later');
is($lag->{json}{information_asymmetry}, 0, 'both know it now');
is($lag->{json}{tribal_divergence}, 50,
   'divergence: 50 x |0.5 - (-0.5)|');
is_deeply([map { "$_->{tribe}:$_->{memory}" }
           @{ $lag->{json}{tribe_history} }],
          ['base:0', 'search:100', 'base:0', 'search:100', 'base:100',
           'search:100'], 'the tribes run by run');
$dbh->do(q{DELETE FROM domain_scores WHERE domain_id =
    (SELECT id FROM domains WHERE domain = 'lag.example')});
$dbh->do(q{DELETE FROM domains WHERE domain = 'lag.example'});
$dbh->do("NOTIFY dr_scores, 'INSERT'");

my $stats = $t->get('/api/stats/rich');
is($stats->{status}, 200, 'GET /api/stats/rich');
DR::OpenAPI::response_ok('GET', '/api/stats/rich', $stats->{status},
    $stats->{content}, '... as the OpenAPI document says');
is($stats->{json}{platform_stats}{total_domains}, 3,
   'the platform stats, as /api/stats');
is_deeply($stats->{json}{platform_stats},
          $t->get('/api/stats')->{json}{platform_stats},
          '... the same figures');
my %tribes = map { $_->{tribe} => $_ } @{ $stats->{json}{tribes} };
is_deeply([sort keys %tribes], ['base', 'search'], 'two tribes');
is($tribes{search}{models}, 1, 'search: one active model');
is($tribes{base}{domains}, 3, 'base: three domains');
is($tribes{base}{average_memory},
   r1(sum(map { $latest{$_}{base}{memory} } keys %latest) / 3),
   'base: mean memory over the domains');
is($stats->{json}{domains_compared}, 3, 'three domains compared');
is($stats->{json}{information_asymmetry},
   r1(sum(map { $latest{$_}{search}{memory} - $latest{$_}{base}{memory} }
          keys %latest) / 3), 'mean information asymmetry');

my $rank = $t->get('/api/rankings/rich?limit=2');
is($rank->{status}, 200, 'GET /api/rankings/rich');
DR::OpenAPI::response_ok('GET', '/api/rankings/rich', $rank->{status},
    $rank->{content}, '... as the OpenAPI document says');
is_deeply([@{ $rank->{json} }{qw(totalDomains totalPages currentPage)}],
          [3, 2, 1], 'three domains on two pages');
is(scalar @{ $rank->{json}{domains} }, 2, 'two on the first');
my $scores = $dbh->selectall_arrayref(q{SELECT d.domain FROM
    latest_domain_scores s JOIN domains d ON d.id = s.domain_id
    ORDER BY s.score DESC, d.domain});
is_deeply([map { $_->{domain} }
           @{ $rank->{json}{domains} },
           @{ $t->get('/api/rankings/rich?limit=2&page=2')->{json}{domains} }],
          [map { $_->[0] } @$scores], 'in the order of the rankings');
for my $d (@{ $rank->{json}{domains} }) {
    is($d->{information_asymmetry},
       r1($latest{ $d->{domain} }{search}{memory}
          - $latest{ $d->{domain} }{base}{memory}),
       "$d->{domain}: its asymmetry");
}
is($t->get('/api/rankings/rich?limit=0')->{status}, 400, 'limit=0: 400');

$t->stop;

done_testing;

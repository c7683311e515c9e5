# Facts and grounding, end to end: an operator posts stripe.com's facts
# (bad input is refused and changes nothing), a run against the
# simulator, which names the brand's founding year, headquarters and
# category and gets some of them wrong, is grounded against them, and
# every figure stored and served (the grounding per model and per fact,
# GET /api/tensors/{brand}) is checked against the answers stored.
# Changing the facts rescores the domain's runs by itself.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::OpenAPI;
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use POSIX ();

# every model knows every brand: each business_analysis answer of
# stripe.com states its facts, some of them wrongly
my $sim = DR::Sim->start(latency_ms => 5, seed => 7, know_all => 1);
my $t = DR::Test->new(db => 1, no_start => 1,
                      http => $sim->crawler_conf(rpm => 600, api => 1,
                                                 cache => 1));
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category)
           VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($_[3] // $admin, @_[0 .. 2]) }

my @stripe = (
    { key => 'founded', value => '2010' },
    { key => 'headquarters', value => 'San Francisco' },
    { key => 'headquarters', value => 'Dublin',
      aliases => ['Baile Átha Cliath'] },
    { key => 'category', value => 'payments' },
    { key => 'founders', value => 'Patrick Collison' },
);

# bad input: a clear error, nothing stored, nothing audited
my $user = $t->create_key(tier => 'free');
for my $case (
    ['{"domain": "stripe.com"}', 400, 'invalid_body', 'facts: a list'],
    ['{"domain": "stripe.com", "facts": {}}', 400, 'invalid_body',
        'facts: a list'],
    ['{"domain": "not a domain!", "facts": []}', 400, 'invalid_domain',
        'domain:'],
    ['{"domain": "stripe.com", "facts": [], "x": 1}', 400, 'invalid_body',
        'unknown field'],
    ['{"domain": "stripe.com", "facts": [{"key": "ceo", "value": "x"}]}',
        400, 'invalid_body', 'facts\[0\]\.key'],
    ['{"domain": "stripe.com", "facts": [{"key": "founded", '
        . '"value": "last year"}]}', 400, 'invalid_body',
        'facts\[0\]\.value: a year'],
    ['{"domain": "stripe.com", "facts": [{"key": "founded", '
        . '"value": 1700}]}', 400, 'invalid_body', 'a year'],
    ['{"domain": "stripe.com", "facts": [{"key": "category", '
        . '"value": ""}]}', 400, 'invalid_body', 'facts\[0\]\.value'],
    ['{"domain": "stripe.com", "facts": [{"key": "category", '
        . '"value": "x", "aliases": "y"}]}', 400, 'invalid_body',
        'aliases'],
    ['{"domain": "stripe.com", "facts": [{"key": "category", '
        . '"value": "x", "aliases": [""]}]}', 400, 'invalid_body',
        'aliases\[0\]'],
    ['{"domain": "stripe.com", "facts": [{"key": "category", '
        . '"value": "x", "source": "y"}]}', 400, 'invalid_body',
        'facts\[0\]: an object'],
    ['{"domain": "stripe.com", "facts": [{"key": "category", '
        . '"value": "x"}, {"key": "category", "value": "x"}]}', 400,
        'invalid_body', 'facts\[1\]: the same key and value as facts\[0\]'],
    ['{"domain": "unknown-brand.com", "facts": []}', 404, 'not_found',
        'POST /admin/domains'],
    ['{"domain": "stripe.com", "facts": [', 400, 'invalid_json', 'JSON'],
    ['{"domain": "stripe.com", "facts": []}', 403, 'forbidden', 'admin',
        $user],
) {
    my ($body, $status, $error, $message, $key) = @$case;
    my $r = admin('POST', '/admin/facts', $body, $key);
    is($r->{status}, $status, "$body: $status");
    is($r->{json}{error}, $error, "... $error");
    like($r->{json}{message}, qr/$message/, "... says why");
}
is($dbh->selectrow_array('SELECT count(*) FROM domain_facts'), 0,
   'bad input stored no fact');
is($dbh->selectrow_array(q{SELECT count(*) FROM admin_audit
    WHERE action = 'facts.set'}), 0, 'and audited nothing');
is(admin('GET', '/admin/facts')->{status}, 400, 'GET needs a domain');
is(admin('GET', '/admin/facts?domain=nope.example')->{status}, 404,
   'GET of an unknown domain: 404');

# the facts
my $r = admin('POST', '/admin/facts',
              encode_json({ domain => 'Stripe.com', facts => [
                  @stripe[1 .. 4], { key => 'founded', value => 2010 } ] }));
is($r->{status}, 200, 'facts posted');
is($r->{json}{domain}, 'stripe.com', 'for the domain, lower-cased');
is(scalar @{ $r->{json}{facts} }, 5, 'five facts stored');
is_deeply([map { "$_->{key}=$_->{value}" } @{ $r->{json}{facts} }],
          ['category=payments', 'founded=2010', 'founders=Patrick Collison',
           'headquarters=Dublin', 'headquarters=San Francisco'],
          'a year given as a number is stored as its text');
ok($r->{json}{rescore_queued}, 'the rescore of its runs is queued');
is($dbh->selectrow_array(q{SELECT count(*) FROM admin_audit
    WHERE action = 'facts.set' AND target = 'stripe.com'}), 1,
   'the write is audited');

# a run
my $run = admin('POST', '/admin/runs', '{}')->{json}{run_id};
is($t->wait_run($run, 300), 'done', "run $run crawled");
DR::Test::wait_for(sub {
    $dbh->selectrow_array(
        'SELECT count(*) FROM domain_scores WHERE run_id = ?',
        undef, $run) == 2;
}, 60);

my ($details, $grounding) = map { decode_json($_) } $dbh->selectrow_array(
    q{SELECT s.details::text, s.grounding::text FROM domain_scores s
      JOIN domains d ON d.id = s.domain_id
      WHERE d.domain = 'stripe.com' AND s.run_id = ?}, undef, $run);
ok(!defined $dbh->selectrow_array(q{SELECT grounding FROM domain_scores s
    JOIN domains d ON d.id = s.domain_id WHERE d.domain = 'github.com'}),
   'a domain without facts has no grounding');

# what each model's stored answers say, read here independently: the
# simulator's sentence "<B> was founded in <year> and is headquartered
# in <city>[ and <city>]; it is a <category> company."
my %said;
my $answers = $dbh->selectall_arrayref(q{SELECT m.provider || '/' ||
    m.model, r.answer FROM responses r JOIN models m ON m.id = r.model_id
    JOIN domains d ON d.id = r.domain_id
    WHERE d.domain = 'stripe.com' AND r.run_id = ? AND r.http_status = 200},
    undef, $run);
for my $a (@$answers) {
    my ($model, $text) = @$a;
    my $s = $said{$model} //= {};
    if ($text =~ /founded in (\d{4})/) {
        $s->{founded}{$1 eq '2010' ? 'sup' : 'con'} = 1;
    }
    my $city = qr/[A-Z][a-z]+(?: [A-Z][a-z]+)?/;
    if ($text =~ /headquartered in ($city)(?: and ($city))?;/) {
        for my $city (grep { defined } $1, $2) {
            if ($city eq 'San Francisco' || $city eq 'Dublin') {
                $s->{$city}{sup} = 1;
            } else {
                $s->{$_}{con} = 1 for 'San Francisco', 'Dublin';
            }
        }
    }
    $s->{payments}{sup} = 1 if $text =~ /\bpayments\b/i;
    $s->{'Patrick Collison'}{sup} = 1 if $text =~ /\bPatrick Collison\b/i;
}
my %expect = (supported => 0, contradicted => 0, unmentioned => 0);
my %per_fact;
for my $model (sort keys %said) {
    next unless $details->{models}{$model}{valid};
    for my $f ('2010', 'San Francisco', 'Dublin', 'payments',
               'Patrick Collison') {
        my $s = $said{$model}{$f eq '2010' ? 'founded' : $f} // {};
        my $st = $s->{con} ? 'contradicted' : $s->{sup} ? 'supported'
               : 'unmentioned';
        $expect{$st}++;
        $per_fact{$f}{$st}++;
    }
}
my $models = grep { $_->{valid} } values %{ $details->{models} };
is($grounding->{models}, $models, "$models models with a valid answer");
is($grounding->{facts}, 5, 'five facts checked');
is_deeply({ map { $_ => $grounding->{$_} } keys %expect }, \%expect,
          'supported, contradicted, unmentioned as the answers say')
    or diag(explain($grounding));
ok($expect{contradicted} > 0, "some models got a fact wrong "
   . "($expect{contradicted})");
ok($expect{supported} > 0, "most got them right ($expect{supported})");
for my $c (@{ $grounding->{checked} }) {
    my $f = $c->{value};
    is_deeply([@$c{qw(supported contradicted)}],
              [map { $per_fact{$f}{$_} // 0 } qw(supported contradicted)],
              "$c->{key} $f: models supporting and contradicting");
}
my $score = 100 * $expect{supported}
    / ($expect{supported} + $expect{contradicted});
cmp_ok(abs($grounding->{score} - $score), '<', 1e-6,
       sprintf('score 100 x supported / stated = %.2f', $score));
is($grounding->{by_model}{'perplexity/sonar'}{contradicted}, 0,
   'the search-enhanced model contradicts nothing');

# the tensors
my $tn = $t->get('/api/tensors/stripe.com');
is($tn->{status}, 200, 'GET /api/tensors/stripe.com');
DR::OpenAPI::response_ok('GET', '/api/tensors/{domain}', $tn->{status},
    $tn->{content}, 'the tensors match the OpenAPI document');
my $j = $tn->{json};
my ($memory, $cohesion) = $dbh->selectrow_array(q{SELECT memory_score,
    cohesion FROM domain_scores s JOIN domains d ON d.id = s.domain_id
    WHERE d.domain = 'stripe.com' AND s.run_id = ?}, undef, $run);
is($j->{run_id}, $run, 'of the latest run');
is($j->{memory}{score}, sprintf('%.1f', $memory) + 0, 'memory score');
is($j->{sentiment}{confidence}, sprintf('%.1f', $cohesion) + 0,
   'confidence is the cohesion');
my $recognizing = grep { $_->{recognized} } values %{ $details->{models} };
my $all = keys %{ $details->{models} };
is($j->{memory}{access_frequency},
   sprintf('%.1f', 100 * $recognizing / $all) + 0,
   'access frequency: models recognizing the brand');
ok(!defined $j->{memory}{retention_strength},
   'no retention without a previous run');
is_deeply([@{ $j->{grounding} }{qw(supported contradicted unmentioned
    facts)}], [@expect{qw(supported contradicted unmentioned)}, 5],
    'grounding counts as stored');
is($j->{grounding}{score}, sprintf('%.1f', $score) + 0, 'grounding score');
is(scalar @{ $j->{grounding}{verified_facts} }, 5, 'verified facts');
my ($founded) = grep { $_->{key} eq 'founded' }
    @{ $j->{grounding}{verified_facts} };
is($founded->{status}, $per_fact{2010}{contradicted}
    ? ($per_fact{2010}{supported} ? 'disputed' : 'contradicted')
    : 'verified', "the founding year is $founded->{status}");
my $sent = $j->{sentiment}{score};
my $w = 0.5 + (defined $sent ? 0.2 : 0) + 0.3;
my $composite = (0.5 * $j->{memory}{score} + (defined $sent ? 0.2 * $sent
    : 0) + 0.3 * $j->{grounding}{score}) / $w;
cmp_ok(abs($j->{composite} - $composite), '<=', 0.11,
       'composite: the weighted mean of the parts');
my %insight = map { $_->{code} => $_ } @{ $j->{insights} };
my %advice = map { $_->{code} => $_ } @{ $j->{recommendations} };
ok($insight{facts_contradicted}, 'insight: facts contradicted');
ok($advice{correct_facts}, 'recommendation: correct them');
is($advice{correct_facts}{because}, 'facts_contradicted',
   '... because of that insight');
ok(!$insight{no_facts}, 'facts were given');
is(!!$insight{memory_strong}, $j->{memory}{score} >= 80,
   'memory_strong exactly when memory >= 80');

is($t->get('/api/tensors/github.com')->{json}{grounding}{facts}, 0,
   'a brand without facts: no grounding figure');
ok((grep { $_->{code} eq 'no_facts' }
    @{ $t->get('/api/tensors/github.com')->{json}{insights} }),
   '... and says so');
my $nf = $t->get('/api/tensors/unknown-brand.com');
is($nf->{status}, 404, 'an unknown brand: 404');
DR::OpenAPI::response_ok('GET', '/api/tensors/{domain}', 404,
    $nf->{content}, '... as the document says');
is($t->get('/api/tensors/not_a_domain')->{status}, 400,
   'an invalid name: 400');

# GET /admin/facts shows the facts and the latest grounding
$r = admin('GET', '/admin/facts?domain=stripe.com');
is($r->{status}, 200, 'GET /admin/facts');
is(scalar @{ $r->{json}{facts} }, 5, 'its facts');
is($r->{json}{grounding}{contradicted}, $expect{contradicted},
   'and their grounding');

# new facts: the run is grounded again by itself, and the API follows;
# its other scores and the time it was scored stay as they were
my $scored_sql = q{SELECT s.computed_at::text, s.memory_score, s.score,
    s.details::text FROM domain_scores s JOIN domains d ON d.id = s.domain_id
    WHERE d.domain = 'stripe.com' AND s.run_id = ?};
my @scored = $dbh->selectrow_array($scored_sql, undef, $run);
$r = admin('POST', '/admin/facts', encode_json({ domain => 'stripe.com',
    facts => [{ key => 'founded', value => '2011' }] }));
is($r->{status}, 200, 'the founding year changed');
is($r->{json}{removed}, 5, 'the five old facts removed');
my $g2;
DR::Test::wait_for(sub {
    $g2 = decode_json($dbh->selectrow_array(q{SELECT grounding::text
        FROM domain_scores s JOIN domains d ON d.id = s.domain_id
        WHERE d.domain = 'stripe.com' AND s.run_id = ?}, undef, $run));
    $g2->{facts} == 1;
}, 60, 0.1);
is_deeply([@$g2{qw(supported contradicted)}],
          [$per_fact{2010}{contradicted} // 0,
           $per_fact{2010}{supported} // 0],
          'rescored: who said 2011 now supports, who said 2010 '
          . 'contradicts');
is_deeply([$dbh->selectrow_array($scored_sql, undef, $run)], \@scored,
          'the other scores and their time are left alone');
DR::Test::wait_for(sub {
    ($t->get('/api/tensors/stripe.com')->{json}{grounding}{facts} // 0)
        == 1;
}, 30, 0.1);
is($t->get('/api/tensors/stripe.com')->{json}{grounding}{supported},
   $g2->{supported}, 'the cached tensors were dropped');

# sets of facts posted at once: the domain keeps one of them whole, never
# a mix (each replacement locks the domain's row first)
my @pids;
for my $n (0 .. 5) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        admin('POST', '/admin/facts', encode_json({ domain => 'github.com',
            facts => [ { key => 'headquarters', value => "Town $n" },
                       { key => 'products', value => "Product $n" } ] }));
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;
my @kept = map { $_->{value} }
    @{ admin('GET', '/admin/facts?domain=github.com')->{json}{facts} };
is(scalar @kept, 2, 'six sets posted at once: one set of two is kept')
    or diag("@kept");
my ($town) = map { /^Town (\d)$/ ? $1 : () } @kept;
ok(defined $town && grep({ $_ eq "Product $town" } @kept),
   'both facts of the same set') or diag("@kept");

$t->stop;

done_testing;

# The latest scores of each domain are a table kept by the writes of
# domain_scores and domains (sql/017_latest_scores.sql): after inserts,
# rescores, deletes, retired and moved domains it holds exactly what a
# DISTINCT ON over every score says, the kept counts are the counts, the
# API's search takes LIKE's own characters literally, and its prepared
# statements are prepared again once the node's connections are lost.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use Test::More;

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF
DR::Fixture::load($t->dbh);
$t->start;

my $dbh = $t->dbh;

my $cols = 'domain_id, run_id, memory_score, ai_consensus, cohesion,'
    . ' drift_score, trend, volatility, score, models_positive,'
    . ' models_neutral, models_negative, models_tracking, response_count,'
    . ' reputation_risk, risk_level, alerts, details, computed_at';

# what the latest scores are by definition, against the table
sub latest_ok {
    my ($name) = @_;
    my $want = $dbh->selectall_arrayref(qq{
        SELECT DISTINCT ON (s.domain_id) $cols FROM domain_scores s
          JOIN domains d ON d.id = s.domain_id AND d.active
         ORDER BY s.domain_id, s.computed_at DESC, s.run_id DESC});
    my $have = $dbh->selectall_arrayref(
        "SELECT $cols FROM latest_domain_scores ORDER BY domain_id");
    is_deeply($have, $want, "$name: the latest scores")
        or diag explain $have;
    my ($wrong) = $dbh->selectrow_array(q{
        SELECT count(*) FROM latest_scores l
          JOIN domains d ON d.id = l.domain_id
         WHERE l.domain IS DISTINCT FROM d.domain
            OR l.category IS DISTINCT FROM d.category
            OR l.active IS DISTINCT FROM d.active});
    is($wrong, 0, "$name: names, categories, activity follow");
    for my $c (['domains', 'SELECT count(*) FROM domains WHERE active'],
               ['responses', 'SELECT count(*) FROM responses'],
               ['scored', 'SELECT count(*) FROM latest_domain_scores']) {
        my ($kept) = $dbh->selectrow_array('SELECT dr_count(?)', undef,
                                           $c->[0]);
        my ($real) = $dbh->selectrow_array($c->[1]);
        is($kept, $real, "$name: kept count of $c->[0] ($real)");
    }
}

latest_ok('fixture');

my $insert = $dbh->prepare(q{
    INSERT INTO domain_scores (domain_id, run_id, memory_score, ai_consensus,
        cohesion, drift_score, trend, volatility, score, models_positive,
        models_neutral, models_negative, models_tracking, response_count,
        reputation_risk, risk_level, alerts, details, computed_at)
    VALUES (?, ?, ?, 50, 50, 0, 0, 0, ?, 1, 1, 1, 3, 9, 0, 'low', '{}', '{}',
            now() - ?::interval)});

$dbh->do(q{INSERT INTO runs (id, kind, status)
           VALUES (3, 'on_demand', 'done'), (4, 'on_demand', 'done')});

# an older row written late does not replace a newer one
$insert->execute(2, 3, 10, 10, '2 days');
latest_ok('an older score written late');

# a newer one does; equal times fall to the higher run
$insert->execute(3, 3, 70, 70, '0 seconds');
$dbh->do(q{UPDATE domain_scores SET computed_at = (SELECT computed_at
            FROM domain_scores WHERE domain_id = 3 AND run_id = 3)
           WHERE domain_id = 3 AND run_id = 1});
latest_ok('a newer score, and a tie in time');

# a rescore of the latest row, and of an older one
$dbh->do(q{UPDATE domain_scores SET score = 42, memory_score = 41
           WHERE domain_id = 1 AND run_id = 2});
$dbh->do(q{UPDATE domain_scores SET score = 1, computed_at = now()
           WHERE domain_id = 2 AND run_id = 3});
latest_ok('rescored rows');

# the latest row made older than the one before it
$dbh->do(q{UPDATE domain_scores SET computed_at = now() - interval '30 days'
           WHERE domain_id = 2 AND run_id = 3});
latest_ok('the latest row made older');

# deletes: the latest row, every row of a domain, a whole run
$dbh->do('DELETE FROM domain_scores WHERE domain_id = 3 AND run_id = 3');
latest_ok('the latest row deleted');
$dbh->do('DELETE FROM domain_scores WHERE domain_id = 2');
latest_ok('every row of a domain deleted');
$dbh->do('DELETE FROM runs WHERE id = 3');
latest_ok('a run deleted');

# retired, brought back, moved, renamed
$dbh->do(q{UPDATE domains SET active = false WHERE id = 1});
latest_ok('a domain retired');
$dbh->do(q{UPDATE domains SET active = true WHERE id IN (1, 5)});
latest_ok('domains brought back');
$dbh->do(q{UPDATE domains SET category = NULL WHERE id = 3});
$dbh->do(q{UPDATE domains SET category = 'Finance',
           domain = 'renamed.example' WHERE id = 5});
latest_ok('domains moved and renamed');

# answers stored and deleted
$dbh->do(q{INSERT INTO prompts (name, template)
           SELECT 'p', 'About {domain}'
            WHERE NOT EXISTS (SELECT 1 FROM prompts)});
$dbh->do(q{INSERT INTO responses (run_id, domain_id, model_id, prompt_id,
               prompt_text, answer, http_status, latency_ms, simulated)
           SELECT 4, d.id, (SELECT min(id) FROM models),
                  (SELECT min(id) FROM prompts), 'p', 'a', 200, 1, true
             FROM domains d});
$dbh->do('DELETE FROM responses WHERE domain_id = 1');
latest_ok('answers stored and deleted');

# new domains, and the API answers from the table
$dbh->do(q{INSERT INTO domains (id, domain, category)
           VALUES (6, 'a_b.example', 'Finance'),
                  (7, 'axb.example', 'Finance')});
$insert->execute(6, 4, 30, 30, '0 seconds');
$insert->execute(7, 4, 31, 31, '0 seconds');
latest_ok('new domains scored');

sub names {
    my ($path) = @_;
    my $r = $t->get($path);
    is($r->{status}, 200, "$path: 200") or diag $r->{content};
    return [map { $_->{domain} } @{$r->{json}{domains} // []}];
}

is_deeply(names('/api/rankings?search=a_b'), ['a_b.example'],
    'search: "_" is a character, not any character');
is_deeply(names('/api/rankings?search=%25'), [],
    'search: "%" is a character, not any text');
is_deeply(names('/api/rankings?search=RENAMED'), ['renamed.example'],
    'search: a renamed domain is found by its new name, in any case');

my ($scored) = $dbh->selectrow_array(
    'SELECT count(*) FROM latest_domain_scores');
my $r = $t->get('/api/rankings?limit=2&page=2');
is($r->{json}{totalDomains}, $scored,
    "rankings: the total of scored domains ($scored)");
is(scalar @{$r->{json}{domains} // []}, 2, 'rankings: the second page');

$r = $t->get('/api/domains/renamed.example/public');
is($r->{status}, 200, 'a domain brought back has its profile');
$r = $t->get('/api/categories');
my ($fin) = grep { $_->{name} eq 'Finance' } @{$r->{json}{categories}};
is($fin->{domainCount}, 4, 'categories: a moved domain counts in its new one');
is_deeply($fin->{topDomains}, ['axb.example', 'a_b.example',
    'renamed.example'],
    'categories: the top three from the index');

# the API's statements are prepared on each connection: after every
# connection of the node is lost, new ones prepare them again and the
# answers are the same
my %before = map { $_ => $t->get($_)->{content} }
    '/api/domains/renamed.example/public', '/api/rankings?search=a_b';
my ($killed) = $dbh->selectrow_array(q{
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND backend_type = 'client backend'});
ok($killed > 0, "the node's connections are killed ($killed)");
for my $path (sort keys %before) {
    my $r;
    DR::Test::wait_for(sub {
        $r = $t->get($path);
        $r->{status} == 200;
    }, 30, 0.1);
    is($r->{content}, $before{$path}, "$path: the same answer after it");
}

done_testing;

# SEO figures: imported by an operator (the module fetches nothing), one
# number per (domain, day, metric), shown beside the domain's memory
# series with each metric's Pearson correlation over the days that have
# both.  Bad imports are refused with the field at fault, storing nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::OpenAPI;
use DR::Test;
use JSON::PP;
use Test::More;
use POSIX ();

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_cache zone=api:1m ttl=60s;
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category)
           VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech')});

# four scored runs of stripe.com, a day apart: memory 40, 50, 60, 80
my @memory = (80, 60, 50, 40);    # today, 1, 2 and 3 days ago
for my $ago (0 .. 3) {
    my ($run) = $dbh->selectrow_array(q{INSERT INTO runs (kind, status)
        VALUES ('on_demand', 'done') RETURNING id});
    $dbh->do(q{INSERT INTO responses (run_id, domain_id, model_id, prompt_id,
        prompt_text, answer, http_status, latency_ms, simulated, captured_at)
        SELECT ?, d.id, 1, 1, 'q', 'a', 200, 1, true,
               now() - ? * interval '1 day'
        FROM domains d WHERE d.domain = 'stripe.com'}, undef, $run, $ago);
    $dbh->do(q{INSERT INTO domain_scores (domain_id, run_id, memory_score,
        ai_consensus, cohesion, drift_score, trend, volatility, score,
        models_positive, models_neutral, models_negative, models_tracking,
        response_count, reputation_risk, risk_level)
        SELECT d.id, ?, ?, 50, 50, 0, 0, 0, 50, 1, 0, 0, 1, 1, 0, 'low'
        FROM domains d WHERE d.domain = 'stripe.com'}, undef, $run,
        $memory[$ago]);
}
my @day = map { $_->[0] } @{ $dbh->selectall_arrayref(q{SELECT
    to_char((now() AT TIME ZONE 'UTC')::date - x, 'YYYY-MM-DD')
    FROM generate_series(0, 10) x ORDER BY x}) };

$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($admin, @_) }
sub count { ($dbh->selectrow_array($_[0], undef, @_[1 .. $#_]))[0] }

is_deeply($t->get('/api/domains/stripe.com/seo')->{json}{correlation}, {},
   'no figures yet (and the answer is cached)');

# bad imports
my %good = (domain => 'stripe.com', date => $day[0],
            metrics => { backlinks => 500 });
for my $bad ([{ %good, date => '2026-02-30' }, 'date'],
             [{ %good, date => '2026-01-31T00:00:00Z' }, 'date'],
             [{ %good, date => undef }, 'date'],
             [{ %good, date => '9999-12-31' }, 'date'],
             [{ %good, date => POSIX::strftime('%Y-%m-%d',
                                gmtime(time + 3 * 86400)) }, 'date'],
             [{ %good, metrics => {} }, 'metrics'],
             [{ %good, metrics => [1] }, 'metrics'],
             [{ %good, metrics => { 'Bad-Name' => 1 } }, 'a name'],
             [{ %good, metrics => { backlinks => '500' } }, 'backlinks'],
             [{ %good, metrics => { backlinks => 1e20 } }, 'backlinks'],
             [{ %good, metrics => { map { ("m$_" => 1) } 1 .. 51 } },
              'metrics'],
             [{ %good, domain => 'bad_domain' }, 'domain'],
             [{ %good, source => 'ahrefs' }, 'unknown field']) {
    my $r = admin('POST', '/admin/metrics/seo', encode_json($bad->[0]));
    is($r->{status}, 400, "a bad import ($bad->[1]): 400");
    like($r->{json} && $r->{json}{message}, qr/\Q$bad->[1]\E/,
         "and it says $bad->[1]");
}
is(admin('POST', '/admin/metrics/seo',
         encode_json({ %good, domain => 'nobody.example' }))->{status}, 404,
   'an unknown domain: 404');
is(count('SELECT count(*) FROM seo_metrics'), 0, 'nothing was stored');

# backlinks rise with memory, organic traffic falls: r = +1 and -1
my @backlinks = (500, 300, 200, 100);
my @traffic = (1, 3, 4, 5);
for my $ago (0 .. 3) {
    my $r = admin('POST', '/admin/metrics/seo', encode_json({
        domain => 'Stripe.com', date => $day[$ago],
        metrics => { backlinks => $backlinks[$ago] * 2,
                     organic_traffic => $traffic[$ago] } }));
    is($r->{status}, 200, "the figures of $day[$ago] imported");
    is($r->{json}{stored}, 2, 'two of them');
}
# the same day again: the figure is replaced, not added
for my $ago (0 .. 3) {
    admin('POST', '/admin/metrics/seo', encode_json({ domain => 'stripe.com',
        date => $day[$ago], metrics => { backlinks => $backlinks[$ago] } }));
}
# a day without a memory score counts for no correlation
admin('POST', '/admin/metrics/seo', encode_json({ domain => 'stripe.com',
    date => $day[10], metrics => { backlinks => 1.5, domain_rating => 71 } }));
is(count('SELECT count(*) FROM seo_metrics'), 10, '10 figures stored');
is(count(q{SELECT count(*) FROM admin_audit WHERE action = 'seo.import'}),
   9, 'each import audited');

my $r = $t->get('/api/domains/stripe.com/seo');
is($r->{status}, 200, 'the domain\'s SEO figures');
DR::OpenAPI::response_ok('GET', '/api/domains/{domain}/seo', 200,
    $r->{json}, 'it matches the OpenAPI schema');
my $j = $r->{json};
is($j->{source}, 'imported', 'said to be imported');
is(scalar @{ $j->{series} }, 5, '5 days: 4 with memory, one without');
is_deeply($j->{series}[-1], { date => $day[0], memory_score => 80,
    metrics => { backlinks => 500, organic_traffic => 1 } },
    'each day with its memory score and figures');
is_deeply($j->{series}[0], { date => $day[10], memory_score => undef,
    metrics => { backlinks => 1.5, domain_rating => 71 } },
    'a day with figures only');
is_deeply($j->{correlation}{backlinks}, { pearson => 1, days => 4 },
    'backlinks: r = 1 over the 4 days with both');
is_deeply($j->{correlation}{organic_traffic}, { pearson => -1, days => 4 },
    'organic traffic: r = -1');
is_deeply($j->{correlation}{domain_rating}, { pearson => undef, days => 0 },
    'no correlation without a day of both');

$r = $t->get('/api/domains/stripe.com/seo?days=5');
is(scalar @{ $r->{json}{series} }, 4, 'days=5: the last 5 days only');
is_deeply($t->get('/api/domains/github.com/seo')->{json}{series}, [],
   'a domain without figures or scores: an empty series');
is($t->get('/api/domains/nobody.example/seo')->{status}, 404,
   'an unknown domain: 404');
is($t->get('/api/domains/stripe.com/seo?days=0')->{status}, 400,
   'days=0: 400');

$t->stop;

done_testing;

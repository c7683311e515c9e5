# The dashboard (html/, served by nginx at /dashboard/) in a real
# browser: Debian's chromium driven by puppeteer-core
# (tools/browser/visit.mjs), and "chromium --headless --dump-dom", which
# prints the page as it is when it loads.  Twelve domains, ten of them
# well-known brands, are crawled twice against the simulator's knowledge
# model; then the rankings show the domains with distinct scores (already
# when the page loads) and page through them, a domain page draws its
# memory score over the two runs and lists each model's verdict, the
# categories and the operator's page (after the admin key is pasted)
# load, and no page logs an error.  A node whose anonymous visitors may
# make one request a minute shows the 429 as a message with the time to
# wait.
#
# DR_SCREENSHOTS=DIR saves DIR/dashboard-{rankings,domain,categories,
# operator,limited}.png (make screenshots, for the README).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use File::Temp ();
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $TOP = $DR::Test::TOP;
my $VISIT = "$TOP/tools/browser/visit.mjs";
my $CHROMIUM = $ENV{DR_CHROMIUM} // '/usr/bin/chromium';

# make test installs both: a missing one is a failure, not a skip
ok(-x $CHROMIUM, "chromium is installed ($CHROMIUM)")
    or BAIL_OUT('chromium is missing: make test installs it');
ok(-d "$TOP/tools/browser/node_modules/puppeteer-core",
    'puppeteer-core is installed (make test runs npm ci)')
    or BAIL_OUT('tools/browser/node_modules is missing: make test makes it');

# the seed's well-known brands (the simulator reads their priority from
# sql/seed/domains.sql), and two names nobody knows
my %CATEGORY = (
    'google.com' => 'Technology', 'apple.com' => 'Technology',
    'microsoft.com' => 'Technology', 'github.com' => 'Developer Tools',
    'stripe.com' => 'Finance', 'openai.com' => 'AI',
    'amazon.com' => 'E-commerce', 'shopify.com' => 'E-commerce',
    'netflix.com' => 'Entertainment', 'notion.so' => 'Productivity',
);
my @FAMOUS = sort keys %CATEGORY;
my @TAIL = qw(bluepine-consulting.net riverside-bakery-example.org);

# the locations of conf/local.conf, its dashboard's taken from the file
open my $lc, '<', "$TOP/conf/local.conf" or die "conf/local.conf: $!";
my ($DASHBOARD) = do { local $/; <$lc> }
    =~ /^( {8}location \/dashboard\/ \{\n.*?^ {8}\}\n)/ms
    or die "conf/local.conf has no location /dashboard/\n";
$DASHBOARD =~ s/\@HTML_DIR\@/$TOP\/html/g;

sub server_conf {
    return <<'EOF' . $DASHBOARD . <<'EOF';
    server {
        listen 127.0.0.1:%%PORT%%;
        error_page 400 404 405 413 414 494 500 502 503 504 /_dr_error;
        location / { dr_auth optional; dr_api; }
        location /admin/ { dr_auth required; dr_admin; }
EOF
        location = /_dr_error { internal; dr_api; }
    }
EOF
}

my $sim = DR::Sim->start(latency_ms => 20, seed => 3);
my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF"
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier anonymous rate=600/m burst=100;
    dr_runner on;
    dr_schedule off;
EOF
    . $sim->providers_conf(rpm => 600) . server_conf());

my $dbh = $t->dbh;
for my $d (@FAMOUS, @TAIL) {
    $dbh->do('INSERT INTO domains (domain, category) VALUES (?, ?)', undef,
        $d, $CATEGORY{$d} // 'Local Business');
}
$t->start;
my $admin = $t->create_key(tier => 'admin');

# two runs, each waited for until its twelve rows of scores are written
sub crawl {
    my $r = $t->keyed($admin, 'POST', '/admin/runs', '{}');
    my $run = $r->{json}{run_id};
    is($t->wait_run($run, $ENV{DR_VALGRIND} ? 600 : 120), 'done',
        "run $run crawled");
    my $deadline = time + ($ENV{DR_VALGRIND} ? 60 : 15);
    my $n = 0;
    while (time < $deadline) {
        ($n) = $dbh->selectrow_array(
            'SELECT count(*) FROM domain_scores WHERE run_id = ?', undef,
            $run);
        last if $n == @FAMOUS + @TAIL;
        sleep 0.1;
    }
    is($n, @FAMOUS + @TAIL, "run $run: every domain scored");
    return $run;
}
crawl();
my $run2 = crawl();

# what the simulated models remember, as the API ranks it
my $r = $t->get('/api/rankings?limit=100');
is($r->{status}, 200, 'the rankings answer');
my %score = map { $_->{domain} => $_->{score} } @{ $r->{json}{domains} };
is(scalar(keys %score), 12, 'all twelve domains are ranked');
my %memory = map { $_ => $dbh->selectrow_array(q{SELECT s.memory_score
        FROM domain_scores s JOIN domains d ON d.id = s.domain_id
        WHERE d.domain = ? ORDER BY s.run_id DESC LIMIT 1}, undef, $_) }
    @FAMOUS, @TAIL;
my %distinct = map { sprintf('%.1f', $memory{$_}) => 1 } @FAMOUS;
ok(keys %distinct >= 3, 'ten well-known brands have '
    . scalar(keys %distinct) . ' distinct memory scores: '
    . join(', ', map { "$_ $memory{$_}" } @FAMOUS));
ok($memory{$_} >= 50, "$_ is remembered: memory $memory{$_}") for @FAMOUS;
ok($memory{$_} <= 30, "$_ is hardly known: memory $memory{$_}") for @TAIL;

# the pages, in the browser
my $base = 'http://127.0.0.1:' . $t->port . '/dashboard/';
my @shots = $ENV{DR_SCREENSHOTS} ? ('--shots', $ENV{DR_SCREENSHOTS},
    '--shoot', 'rankings,domain,categories,operator,limited') : ();

# nginx under valgrind answers slowly: the pages may take longer
local $ENV{DR_BROWSER_WAIT_MS} = 180000 if $ENV{DR_VALGRIND};

sub visit {
    my (@args) = @_;
    open my $fh, '-|', 'node', $VISIT, @args or die "node: $!";
    my $out = do { local $/; <$fh> };
    close $fh;
    ok($? == 0, 'the browser visited ' . join(', ', map { /^(\w[\w-]*)=/
        ? $1 : () } @args)) or return {};
    return { map { $_->{name} => $_ } @{ decode_json($out) } };
}

# the queue's figures the operator's page shows are refreshed by the node
# in the background (every 15 s): the page is visited once they show the
# runs' end
ok(DR::Test::wait_for(sub {
        my $q = $t->get('/readyz')->{json}{queue} // {};
        defined $q->{queued} && $q->{queued} == 0 && $q->{leased} == 0;
    }, $ENV{DR_VALGRIND} ? 120 : 60),
    'the node\'s queue figures show the runs ended');

my $seen = visit(@shots, '--key', $admin, '--watch', $run2,
    "rankings=$base",
    "page2=$base#/?limit=5&page=2",
    "search=$base#/?search=git",
    "domain=$base#/domain/github.com",
    "categories=$base#/categories",
    "operator=$base#/operator");

# every page: served by nginx, settled, and nothing went wrong
for my $name (qw(rankings page2 search domain categories operator)) {
    my $p = $seen->{$name} // {};
    like($p->{status} // 0, qr/^(?:200|304)$/,
        "$name: the page is served (or revalidated)");
    ok($p->{settled}, "$name: every section loaded")
        or diag($p->{settleError});
    is_deeply($p->{errors}, [], "$name: no error message shown");
    my @complaints = (@{ $p->{console} // [undef] },
                      @{ $p->{exceptions} // [] });
    is(scalar @complaints, 0,
        "$name: no console error or warning, no exception")
        or diag(explain(\@complaints));
    my @failed = (@{ $p->{http} // [undef] }, @{ $p->{failed} // [] });
    is(scalar @failed, 0, "$name: no request failed")
        or diag(explain(\@failed));
}
like($seen->{rankings}{headers}{'content-security-policy'} // '',
    qr/default-src 'self'/, 'the page carries its content security policy');

# the rankings
my $rk = $seen->{rankings};
is_deeply([sort @{ $rk->{rankings} }], [sort @FAMOUS, @TAIL],
    'the rankings list the twelve domains');
is_deeply($rk->{rankings}, [sort { $score{$b} <=> $score{$a} || $a cmp $b }
    keys %score], '... best score first, as the API ranks them');
like($rk->{text}, qr/Domains tracked\s+12/, 'the platform figures are shown');
is($rk->{atLoad}{rankings}, 12, 'the first page of the rankings is in the '
    . 'page when it loads');

# what "chromium --headless --dump-dom" prints, the page as it loads
{
    my $profile = File::Temp::tempdir('dr-dump-XXXXXX', TMPDIR => 1,
        CLEANUP => 1);
    my $pid = open my $fh, '-|' // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec 'timeout', '60', $CHROMIUM, qw(--headless --no-sandbox
            --disable-gpu --disable-quic --no-first-run
            --disable-background-networking --disable-component-update
            --disable-sync), "--user-data-dir=$profile", '--dump-dom', $base;
        exit 127;
    }
    my $dom = do { local $/; <$fh> } // '';
    close $fh;
    like($dom,
        qr{<a href="#/domain/github\.com" class="domain">github\.com</a>},
        'chromium --dump-dom of /dashboard/ shows github.com');
    like($dom, qr{<svg\b[^>]*class="bar}, '... and its scores drawn in svg');
}
like($rk->{pager}, qr/Page 1 of 1 \(12 domains\)/, 'one page of twelve');
is_deeply($seen->{page2}{rankings}, [@{ $rk->{rankings} }[5 .. 9]],
    'five a page: the second page holds the 6th to the 10th');
like($seen->{page2}{pager}, qr/Page 2 of 3/, '... of three');
is_deeply($seen->{search}{rankings}, ['github.com'],
    'a search for "git" finds github.com alone');

# a domain
my $dp = $seen->{domain};
is_deeply($dp->{h1}, ['github.com'], 'the domain page is github.com\'s');
like($dp->{text}, qr/Memory score\s+\d+\.\d/, 'its memory score');
my $chart = $dp->{chart} // {};
ok($chart->{width} > 200 && $chart->{height} > 80,
    "the chart is drawn ($chart->{width} x $chart->{height})");
is($chart->{circles}, 2, 'a point per run');
is_deeply($chart->{paths}, [2, 2], 'a line of memory and one of drift, '
    . 'each through both runs');
is(scalar @{ $dp->{models} }, 8, 'each of the eight models\' verdict');
like($dp->{text}, qr/(agrees|diverges) with|from the others/,
    '... as agreeing or diverging');
like($dp->{text}, qr/Drift score\s+0\.\d\d/, 'its drift');
like($dp->{text}, qr/Consensus\s+\d+\.\d/, 'its consensus');

# categories, the operator
is_deeply([sort @{ $seen->{categories}{categories} }],
    [sort { $a cmp $b } 'Local Business', keys %{{ reverse %CATEGORY }}],
    'the categories page lists the eight categories');
my $op = $seen->{operator};
like($op->{keyState}, qr/admin key in use/, 'the pasted key is in use');
is_deeply([sort @{ $op->{health} }], [sort keys %DR::Sim::MODELS],
    'the providers\' health lists the eight providers');
like($op->{text}, qr/Queued\s+0/, 'the queue is empty after the runs');
like($op->{text}, qr/Start a run/, 'a run can be started from there');
is_deeply($op->{runs}, [$run2], 'the run asked for is watched');
like($op->{text}, qr/\b$run2\s+done\s+288 \/ 288\b/,
    '... done, its 288 jobs ended');

# a node whose anonymous visitors may make one request a minute: the
# rankings page makes two, and the second is refused
my $tiny = DR::Test->new(no_start => 1, http => <<'EOF' . server_conf());
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier anonymous rate=1/m burst=1;
EOF
$tiny->{cluster} = $t->{cluster};
$tiny->{dbname} = $t->{dbname};
$tiny->{borrowed_db} = 1;
$tiny->write_conf;
$tiny->start;

$seen = visit(@shots, 'limited=http://127.0.0.1:' . $tiny->port
    . '/dashboard/');
my $lp = $seen->{limited} // {};
ok($lp->{settled}, 'the limited page settles');
my @limited = grep { ($_->{status} // '') eq '429' } @{ $lp->{errors} };
is(scalar @limited, 1, 'one section shows the 429')
    or diag(explain($lp->{errors}));
like($limited[0]{text} // '', qr/Too many requests: .* Try again in \d+ s\./,
    'as a message with the time to wait');
ok(@{ $lp->{rankings} } || $lp->{text} =~ /Domains tracked/,
    'the other section is shown all the same');

$tiny->stop;
$t->stop;

done_testing;

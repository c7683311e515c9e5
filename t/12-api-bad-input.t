# Bad input: every malformed domain, parameter, encoding and oversized
# request gets a clear JSON 4xx, nothing is written, and the error log has
# no [error] line for any of it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use IO::Socket::INET;
use Test::More;

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_cache zone=api:1m ttl=30s;

    server {
        listen 127.0.0.1:%%PORT%%;
        error_page 400 404 405 413 414 494 /_dr_error;
        location / { dr_api; }
        location = /_dr_error { internal; dr_api; }
    }
EOF
DR::Fixture::load($t->dbh);
$t->start;

my @tables = qw(domains runs jobs responses domain_scores api_keys
                usage_daily prompts models schema_migrations);

sub snapshot {
    my $dbh = $t->dbh;
    return { map {
        my ($n) = $dbh->selectrow_array("SELECT count(*) FROM $_");
        my ($h) = $dbh->selectrow_array(
            "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))
               FROM $_ t");
        ($_ => "$n:$h")
    } @tables };
}

my $before = snapshot();

# raw requests, so that nothing is normalized on the way
sub raw {
    my ($target, $method) = @_;
    $method //= 'GET';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port) or die;
    print $s "$method $target HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    local $/;
    my $answer = <$s> // '';
    my ($status) = $answer =~ m{^HTTP/1\.1 (\d+)};
    my ($type) = $answer =~ m{\r\nContent-Type: ([^\r]+)}i;
    my ($body) = $answer =~ m{\r\n\r\n(.*)\z}s;
    my $json = eval { JSON::PP::decode_json($body) };
    return ($status // 0, $type // '', $json);
}

my $long_label = 'a' x 64;
my $long_domain = ('a' x 63 . '.') x 3 . ('b' x 58) . '.com';    # 254

my @cases = (
    # domains in paths
    [ '/api/drift/exa_mple.com', 400, 'invalid_domain', 'underscore' ],
    [ '/api/drift/-abc.com', 400, 'invalid_domain', 'leading hyphen' ],
    [ '/api/drift/abc-.com', 400, 'invalid_domain', 'trailing hyphen' ],
    [ '/api/drift/a..b.com', 400, 'invalid_domain', 'empty label' ],
    [ "/api/drift/$long_label.com", 400, 'invalid_domain', 'label of 64' ],
    [ "/api/drift/$long_domain", 400, 'invalid_domain', 'name of 254' ],
    [ '/api/drift/localhost', 400, 'invalid_domain', 'one label' ],
    [ '/api/drift/10.0.0.1', 400, 'invalid_domain', 'an IP address' ],
    [ '/api/drift/xn--zz-.com', 400, 'invalid_domain', 'bad punycode' ],
    [ '/api/drift/ex%C3%A1mple.com', 400, 'invalid_domain', 'raw UTF-8 IDN' ],
    [ '/api/drift/%FF%FE.com', 400, 'invalid_domain', 'invalid UTF-8' ],
    [ "/api/drift/a.com'%20OR%20'1'='1", 400, 'invalid_domain',
      'SQL in a domain' ],
    [ '/api/drift/a.com;DROP%20TABLE%20domains', 400, 'invalid_domain',
      'a statement in a domain' ],
    [ '/api/domains/a.com%0Ab/public', 400, 'invalid_domain',
      'a new line in a domain' ],
    [ '/api/domains//public', 404, 'not_found', 'no domain at all' ],
    [ '/api/drift/a.com/extra', 404, 'not_found', 'a path past the domain' ],

    # numbers
    [ '/api/rankings?page=0', 400, 'invalid_parameter', 'page 0' ],
    [ '/api/rankings?page=-1', 400, 'invalid_parameter', 'negative page' ],
    [ '/api/rankings?page=100001', 400, 'invalid_parameter', 'page too far' ],
    [ '/api/rankings?page=99999999999999999999999', 400,
      'invalid_parameter', 'a page beyond 64 bits' ],
    [ '/api/rankings?limit=101', 400, 'invalid_parameter', 'limit > 100' ],
    [ '/api/rankings?limit=1e3', 400, 'invalid_parameter', 'limit 1e3' ],
    [ '/api/rankings?limit=', 400, 'invalid_parameter', 'an empty limit' ],
    [ '/api/rankings?limit=%2B5', 400, 'invalid_parameter', 'limit +5' ],
    [ '/api/ticker?limit=21', 400, 'invalid_parameter', 'ticker limit 21' ],
    [ '/api/time-series/alpha.example?days=366', 400, 'invalid_parameter',
      'days 366' ],
    [ '/api/rankings?sort=score;DROP', 400, 'invalid_parameter',
      'an unknown sort' ],
    [ '/api/domains/alpha.example/public?include_alerts=yes', 400,
      'invalid_parameter', 'a boolean that is not one' ],

    # encodings and text
    [ '/api/rankings?search=%FF', 400, 'invalid_parameter',
      'invalid UTF-8 in search' ],
    [ '/api/rankings?search=%C0%AF', 400, 'invalid_parameter',
      'an overlong UTF-8 form' ],
    [ '/api/rankings?search=%E2%82', 400, 'invalid_parameter',
      'a truncated UTF-8 sequence' ],
    [ '/api/rankings?search=a%00b', 400, 'invalid_parameter',
      'a NUL in search' ],
    [ '/api/rankings?search=a%0Ab', 400, 'invalid_parameter',
      'a new line in search' ],
    [ '/api/rankings?search=' . ('x' x 101), 400, 'invalid_parameter',
      'a search of 101 characters' ],
    [ '/api/rankings?search=%zz', 400, 'invalid_parameter',
      'malformed percent-encoding' ],
    [ '/api/rankings?page=%3', 400, 'invalid_parameter',
      'truncated percent-encoding' ],

    # parameters
    [ '/api/rankings?page=1&page=2', 400, 'invalid_parameter',
      'a parameter twice' ],

    # methods and sizes
    [ '/api/stats', 405, 'method_not_allowed', 'DELETE', 'DELETE' ],
    [ '/api/rankings?search=' . ('y' x 9000), 414, 'uri_too_long',
      'a URI of 9 KB' ],
    [ '/nope', 404, 'not_found', 'an unknown path' ],
);

for my $c (@cases) {
    my ($target, $status, $code, $name, $method) = @$c;
    my ($got, $type, $json) = raw($target, $method);
    is($got, $status, "$name: $status");
    is($type, 'application/json; charset=utf-8', "$name: JSON");
    is($json && $json->{error}, $code, "$name: error \"$code\"");
    ok($json && length($json->{message} // '') > 5, "$name: a message")
        or diag(explain $json);
}

# the messages name what was wrong
my (undef, undef, $j) = raw('/api/rankings?limit=500');
like($j->{message}, qr/^limit: a whole number from 1 to 100/,
    'the message names the parameter and the bounds');
(undef, undef, $j) = raw('/api/drift/exa_mple.com');
like($j->{message}, qr/^domain: /, 'the message names the domain');

# the database still works and nothing changed
my ($status) = raw('/api/rankings');
is($status, 200, 'the API still answers');
is_deeply(snapshot(), $before, 'no table changed');

my @errors = grep { /\[error\]/ } split /\n/, $t->error_log;
ok(!@errors, 'no [error] in the log for bad input') or diag("@errors");

$t->stop;

done_testing;

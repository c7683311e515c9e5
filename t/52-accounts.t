# The accounts of the original public API: register (an account, a free
# key shown once, an access token), log in, /api/auth/me with the token
# or the key, a password change that ends the tokens issued before it.
# Bad input is a 4xx with the original's "detail" and stores nothing;
# wrong passwords meet a 429 per client network, while the owner from
# another network signs in; no password or token reaches the error log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::OpenAPI;
use DR::Test;
use Digest::SHA qw(hmac_sha256);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);
use Test::More;

my $conf = <<'EOF';
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_jwt_secret_file %%DIR%%/jwt_secret;
    dr_auth_cache zone=keys:1m ttl=300s;
    dr_limit_zone zone=limits:1m;
    dr_tier free rate=100/s burst=100 daily=100000;
    dr_tier anonymous rate=100/s burst=100 daily=100000;

    # the client's network from X-Forwarded-For: several clients here
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth optional; dr_api; }
        location /api/stats { dr_auth required; dr_api; }
        location /api/auth/login { dr_auth required; dr_api; }
    }
EOF

my $t = DR::Test->new(db => 1, no_start => 1);
my $jwt_secret = 'FAKE-jwt-secret-for-tests-' . ('x' x 24);
open my $fh, '>', $t->dir . '/jwt_secret' or die "jwt_secret: $!";
print $fh "$jwt_secret\n";
close $fh;
chmod 0600, $t->dir . '/jwt_secret';
$t->write_conf($conf);
$t->start;

# a second node on the same database and secrets, for the password change
my $b = DR::Test->new(no_start => 1);
$b->{cluster} = $t->{cluster};
$b->{dbname} = $t->{dbname};
$b->{borrowed_db} = 1;
$b->{secret} = $t->{secret};
$b->write_conf($conf =~ s{%%DIR%%/jwt_secret}{$t->dir . '/jwt_secret'}er);
$b->start;
ok($b->wait_log(qr/listening for notifications/), 'node b listens');

ok(!grep({ my @tasks = glob("/proc/$_/task/*"); @tasks < 2 }
         $t->worker_pids),
   'each worker has the thread pool that scrypt runs in');

my $dbh = $t->dbh;
my $n = 0;

sub post {
    my ($path, $body, %h) = @_;
    return $t->http('POST', $path, body => ref $body ? encode_json($body)
                                                      : $body,
        headers => { 'Content-Type' => 'application/json',
                     'X-Forwarded-For' => '10.0.0.' . (++$n % 200 + 1),
                     %h });
}

sub bearer { return { Authorization => "Bearer $_[0]" } }

my $password = 'FAKE-pass-w0rd';
my @seen;    # every password and token, looked for in the log at the end
push @seen, $password;


# register

my $r = post('/api/auth/register', { email => 'Ada@Example.com',
    password => $password, full_name => 'Ada Lovelace' });
is($r->{status}, 201, 'registered');
my $acc = $r->{json} // {};
is($acc->{email}, 'ada@example.com', 'the address, lower-cased');
is($acc->{full_name}, 'Ada Lovelace', 'the full name');
is($acc->{tier}, 'free', 'a free-tier account');
like($acc->{api_key} // '', qr/^dr_[a-z0-9]{8}_[A-Za-z0-9]{32}$/,
     'an API key, shown once');
like($acc->{access_token} // '', qr/^[\w-]+\.[\w-]+\.[\w-]+$/,
     'an access token');
is($acc->{token_type}, 'bearer', 'of type bearer');
is($acc->{expires_in}, 3600, 'for an hour');
push @seen, $acc->{api_key}, $acc->{access_token};
DR::OpenAPI::response_ok('POST', '/api/auth/register', 201, $r->{content},
    'the answer is as the OpenAPI document says');

my ($stored) = $dbh->selectrow_array(
    'SELECT password_hash FROM accounts WHERE email = ?', undef,
    'ada@example.com');
like($stored, qr/^scrypt\$14\$8\$1\$[\w-]{22}\$[\w-]{43}$/,
     'the password is stored as its scrypt hash');

$r = post('/api/auth/register', { email => 'ada@example.com',
    password => 'FAKE-an0ther', full_name => 'Someone' });
is($r->{status}, 409, 'an address registered twice: 409');
is($r->{json}{detail}, 'Email already registered', 'with the detail');
DR::OpenAPI::response_ok('POST', '/api/auth/register', 409, $r->{content},
    'as documented');


# bad input: 4xx with detail, nothing stored

my @bad = (
    [ { email => 'not-an-address', password => $password }, 400,
      'invalid_email', 'an address without @' ],
    [ { email => 'a@localhost', password => $password }, 400,
      'invalid_email', 'an address without a domain' ],
    [ { email => 'b@example.com', password => 'Sh0rt' }, 400,
      'weak_password', 'a password under 8 characters' ],
    [ { email => 'b@example.com', password => 'onlylowercase' }, 400,
      'weak_password', 'a password of one class' ],
    [ { email => 'b@example.com', password => '1234567890' }, 400,
      'weak_password', 'a password of digits' ],
    [ { email => 'b@example.com', password => $password, admin => 1 }, 400,
      'invalid_body', 'an unknown field' ],
    [ { email => 'b@example.com' }, 400, 'invalid_body', 'no password' ],
    [ { email => 'b@example.com', password => 12345678 }, 400,
      'invalid_body', 'a password that is no string' ],
    [ '{"email": "b@example.com",', 400, 'invalid_json', 'broken JSON' ],
    [ '[1, 2]', 400, 'invalid_body', 'a body that is no object' ],
    [ { email => 'b@example.com', password => $password,
        full_name => "a\x01b" }, 400, 'invalid_body',
      'a name with a control character' ],
);

for my $c (@bad) {
    my ($body, $status, $error, $what) = @$c;
    $r = post('/api/auth/register', $body);
    is($r->{status}, $status, "$what: $status");
    is($r->{json}{error}, $error, "$what: $error");
    ok(length($r->{json}{detail} // ''), "$what: a detail");
}

$r = $t->get('/api/auth/register');
is($r->{status}, 405, 'GET of register: 405');
is($r->{headers}{allow}, 'POST, OPTIONS', 'which says POST');

is($dbh->selectrow_array('SELECT count(*) FROM accounts'), 1,
   'bad input stored no account');
is($dbh->selectrow_array('SELECT count(*) FROM api_keys'), 1,
   'nor a key');


# log in

$r = post('/api/auth/login', { email => 'ADA@example.com',
                               password => $password });
is($r->{status}, 200, 'logged in, where the location requires a key');
is_deeply([ sort keys %{$r->{json} // {}} ],
          [ qw(access_token expires_in token_type) ],
          'the answer: access_token, token_type, expires_in');
is($r->{json}{token_type}, 'bearer', 'a bearer token');
my $token = $r->{json}{access_token};
push @seen, $token;
DR::OpenAPI::response_ok('POST', '/api/auth/login', 200, $r->{content},
    'the answer is as the OpenAPI document says');

$r = post('/api/auth/login', { email => 'ada@example.com',
                               password => 'FAKE-wr0ng-pass' });
is($r->{status}, 401, 'a wrong password: 401');
is($r->{json}{detail}, 'Incorrect email or password', 'with the detail');
DR::OpenAPI::response_ok('POST', '/api/auth/login', 401, $r->{content},
    'as documented');

$r = post('/api/auth/login', { email => 'nobody@example.com',
                               password => $password });
is($r->{status}, 401, 'an unknown address: 401');
is($r->{json}{detail}, 'Incorrect email or password', 'the same detail');


# the account, with the token or with its key

$r = $t->get('/api/auth/me', headers => bearer($token));
is($r->{status}, 200, '/api/auth/me with the token');
is($r->{json}{email}, 'ada@example.com', 'shows the email');
is($r->{json}{tier}, 'free', 'and the tier');
my $keys = $r->{json}{api_keys} // [];
is(scalar @$keys, 1, 'and its key');
like($keys->[0]{key} // '', qr/^dr_[a-z0-9]{8}_\*\*\*\*$/, 'masked');
ok(ref $r->{json}{usage}{days} eq 'ARRAY', 'and its usage');
DR::OpenAPI::response_ok('GET', '/api/auth/me', 200, $r->{content},
    'the answer is as the OpenAPI document says');

$r = $t->get('/api/auth/me',
             headers => { 'X-API-Key' => $acc->{api_key} });
is($r->{json}{email}, 'ada@example.com', 'the same with its API key');

$r = $t->get('/api/auth/me');
is($r->{status}, 401, 'without either: 401');
is($r->{json}{detail}, 'Not authenticated', 'with the detail');

is($t->get('/api/stats')->{status}, 401, 'a location that needs a key');
$r = $t->get('/api/stats', headers => bearer($token));
is($r->{status}, 200, 'takes the token');
is($r->{headers}{'x-ratelimit-limit'},
   $t->get('/api/stats', headers =>
       { 'X-API-Key' => $acc->{api_key} })->{headers}{'x-ratelimit-limit'},
   "with the limits of the account's tier");

# tokens that are not the server's

my ($h, $p, $s) = split /\./, $token;
my $flip = substr($s, 0, 1) eq 'A' ? 'B' : 'A';
my @forged = (
    [ "$h.$p." . $flip . substr($s, 1), 'invalid_token', 'a bad signature' ],
    [ encode_base64url('{"alg":"none","typ":"JWT"}') . ".$p.", 
      'invalid_token', 'alg none' ],
    [ "$h.$p", 'invalid_token', 'two parts' ],
);

sub sign {
    my ($claims, $key) = @_;
    my $head = encode_base64url('{"alg":"HS256","typ":"JWT"}');
    my $body = encode_base64url(encode_json($claims));
    return "$head.$body."
        . encode_base64url(hmac_sha256("$head.$body", $key));
}

my $claims = decode_json(MIME::Base64::decode_base64url($p));
push @forged,
    [ sign({ %$claims, exp => time - 10 }, $jwt_secret), 'expired_token',
      'an expired token' ],
    [ sign({ %$claims, exp => time + 3600 }, 'FAKE-another-secret'),
      'invalid_token', 'another secret' ],
    [ sign({ %$claims, sub => "999" }, $jwt_secret), 'invalid_token',
      'another account' ];

for my $f (@forged) {
    my ($tok, $error, $what) = @$f;
    $r = $t->get('/api/auth/me', headers => bearer($tok));
    is($r->{status}, 401, "$what: 401");
    is($r->{json}{error}, $error, "$what: $error");
}

$r = $t->get('/api/auth/me', headers => bearer(
    sign({ %$claims, exp => time + 60 }, $jwt_secret)));
is($r->{status}, 200, 'a token signed with the secret is good');


# limits: per client network, not a lock-out of the owner elsewhere

my @codes = map {
    post('/api/auth/login', { email => 'ada@example.com',
                              password => "FAKE-wr0ng-$_" },
         'X-Forwarded-For' => '10.9.0.1')->{status}
} 1 .. 30;
is_deeply([ @codes[0 .. 9] ], [ (401) x 10 ], 'ten wrong passwords: 401');
is_deeply([ @codes[10 .. 29] ], [ (429) x 20 ],
          '30 wrong passwords in a row meet a 429');
$r = post('/api/auth/login', { email => 'ada@example.com',
    password => $password }, 'X-Forwarded-For' => '10.9.0.1');
is($r->{status}, 429, 'that network is refused even the right password');
DR::OpenAPI::response_ok('POST', '/api/auth/login', 429, $r->{content},
    'as documented');
like($r->{json}{detail} // '', qr/[Tt]oo many/, 'with a detail');
ok($r->{headers}{'retry-after'} || $r->{json}{detail},
   'saying when to come back');

$r = post('/api/auth/login', { email => 'ada@example.com',
    password => $password }, 'X-Forwarded-For' => '10.9.0.2');
is($r->{status}, 200, 'the owner on another network signs in');

# the address's own count, whatever the network's bucket holds
$dbh->do(q{INSERT INTO login_failures (email, address, failures)
    VALUES ('ada@example.com', '10.9.0.3/32', 10)});
$r = post('/api/auth/login', { email => 'ada@example.com',
    password => $password }, 'X-Forwarded-For' => '10.9.0.3');
is($r->{status}, 429, 'ten failures of a network on the account: 429');
my $known = $r;

# an unknown address is counted and refused alike: the answers do not
# tell which addresses have an account
post('/api/auth/login', { email => 'nobody@example.com',
    password => 'FAKE-wr0ng' }, 'X-Forwarded-For' => '10.9.0.5') for 1 .. 2;
is($dbh->selectrow_array(q{SELECT failures FROM login_failures
    WHERE email = 'nobody@example.com' AND address = '10.9.0.5/32'}), 2,
    'the failures of an unknown address are counted');
$dbh->do(q{UPDATE login_failures SET failures = 10
    WHERE email = 'nobody@example.com'});
$r = post('/api/auth/login', { email => 'nobody@example.com',
    password => 'FAKE-wr0ng' }, 'X-Forwarded-For' => '10.9.0.5');
is($r->{status}, 429, 'and refused after ten, as a known one');
is($r->{json}{detail}, $known->{json}{detail}, 'with the same detail');
is($r->{headers}{'retry-after'}, $known->{headers}{'retry-after'},
   'and the same wait');

# failures from many networks lock none but themselves out: the owner on
# a network of its own still signs in
$dbh->do(q{INSERT INTO login_failures (email, address, failures)
    SELECT 'ada@example.com', '10.8.' || i || '.0/24', 10
    FROM generate_series(1, 50) i});
$r = post('/api/auth/login', { email => 'ada@example.com',
    password => $password }, 'X-Forwarded-For' => '10.9.0.6');
is($r->{status}, 200, '500 failures from 50 networks: the owner signs in');

# failures an hour old are pruned by the next failure
$dbh->do(q{UPDATE login_failures SET first_at = now() - interval '2 hours'
    WHERE address LIKE '10.8.%'});
post('/api/auth/login', { email => 'ada@example.com',
    password => 'FAKE-wr0ng' }, 'X-Forwarded-For' => '10.9.0.7');
is($dbh->selectrow_array(q{SELECT count(*) FROM login_failures
    WHERE address LIKE '10.8.%'}), 0, 'old failures are pruned');

# a success clears its network's count
post('/api/auth/login', { email => 'ada@example.com',
    password => 'FAKE-wr0ng' }, 'X-Forwarded-For' => '10.9.0.4') for 1 .. 3;
is($dbh->selectrow_array(q{SELECT failures FROM login_failures
    WHERE address = '10.9.0.4/32'}), 3, 'three failures counted');
$r = post('/api/auth/login', { email => 'ada@example.com',
    password => $password }, 'X-Forwarded-For' => '10.9.0.4');
is($r->{status}, 200, 'then the right password');
is($dbh->selectrow_array(q{SELECT count(*) FROM login_failures
    WHERE address = '10.9.0.4/32'}), 0, 'clears the count');


# a password change ends the tokens issued before it

my $new_password = 'FAKE-n3w-password';
push @seen, $new_password;
$r = post('/api/auth/password', { password => 'FAKE-wr0ng-pass',
    new_password => $new_password }, %{bearer($token)});
is($r->{status}, 401, 'a change with a wrong password: 401');
$r = post('/api/auth/password', { password => $password,
    new_password => 'weak' }, %{bearer($token)});
is($r->{status}, 400, 'a weak new password: 400');
$r = post('/api/auth/password', { password => $password,
    new_password => $new_password });
is($r->{status}, 401, 'a change without a token: 401');

is($b->get('/api/auth/me', headers => bearer($token))->{status}, 200,
   'node b took the token before the change (and caches its key)');
$r = post('/api/auth/password', { password => $password,
    new_password => $new_password }, %{bearer($token)});
is($r->{status}, 200, 'the password changed');
my $token2 = $r->{json}{access_token} // '';
push @seen, $token2;
DR::OpenAPI::response_ok('POST', '/api/auth/password', 200, $r->{content},
    'the answer is as the OpenAPI document says');

ok(DR::Test::wait_for(sub {
    $t->get('/api/auth/me', headers => bearer($token))->{status} == 401
    && $b->get('/api/auth/me', headers => bearer($token))->{status} == 401
    }, 30), 'the token issued before is refused on both nodes');
is($b->get('/api/auth/me', headers => bearer($token2))->{status}, 200,
   'the new one works on node b');
is($t->get('/api/auth/me', headers => bearer($token2))->{status}, 200,
   'the new one works');
is(post('/api/auth/login', { email => 'ada@example.com',
    password => $password })->{status}, 401, 'the old password fails');
is(post('/api/auth/login', { email => 'ada@example.com',
    password => $new_password })->{status}, 200, 'the new one works');


# nothing of a password or token in the log

my $log = $t->error_log . $b->error_log;
ok(!grep({ index($log, $_) >= 0 } @seen),
   'no password, key or token in the error log');
ok(!grep({ index($log, (split /\./)[2] // 'x') >= 0 }
         grep { /\./ } @seen), 'nor a token\'s signature');

$t->stop;
$b->stop;

done_testing;

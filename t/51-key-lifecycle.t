# A key's lifecycle on two nodes of one PostgreSQL: a rotation gives the
# same key (id, tier, usage) a new secret, shown once, while the old one
# is accepted on both nodes until its grace ends and refused after it; a
# PATCH of the tier changes the limits the other node applies, through
# the notification, not when its cache (300 s) would forget the key.
# Bad input is a 4xx that changes nothing; every change is audited.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $conf = <<'EOF';
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m ttl=300s;
    dr_limit_zone zone=limits:1m;
    dr_tier free rate=100/s burst=100 daily=100000;
    dr_tier pro rate=200/s burst=200 daily=100000;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /ping { dr_auth required; empty_gif; }
        location / { dr_auth required; dr_api; }
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF

my $a = DR::Test->new(db => 1, no_start => 1);
my $b = DR::Test->new(no_start => 1);
$b->{cluster} = $a->{cluster};
$b->{dbname} = $a->{dbname};
$b->{borrowed_db} = 1;
$b->{secret} = $a->{secret};
$a->write_conf($conf);
$b->write_conf($conf);
$a->start;
$b->start;
ok($b->wait_log(qr/listening for notifications/), 'node b listens');

my $admin = $a->create_key(tier => 'admin');
my $dbh = $a->dbh;

sub ping {
    my ($node, $key) = @_;
    return $node->get('/ping', headers => { 'X-API-Key' => $key });
}

# every one of n requests to the node answers this status
sub all_are {
    my ($node, $key, $status) = @_;
    return !grep { ping($node, $key)->{status} != $status } 1 .. 4;
}

my $r = $a->keyed($admin, 'POST', '/admin/keys', encode_json({
    name => 'partner', tier => 'free', owner => 'ops@example.com',
    note => 'the partner dashboard' }));
is($r->{status}, 201, 'a key with an owner and a note');
is($r->{json}{owner}, 'ops@example.com', 'its owner is shown');
is($r->{json}{note}, 'the partner dashboard', 'its note is shown');
my ($old, $id, $prefix) = @{$r->{json}}{qw(key id prefix)};

is(ping($a, $old)->{status}, 200, 'node a accepts the key');
is(ping($b, $old)->{status}, 200, 'node b accepts it, and caches it');


# bad input: a 4xx, and nothing changed

my $before = $dbh->selectrow_arrayref(q{SELECT encode(secret_hash, 'hex'),
    tier, owner, note, expires_at, previous_hash FROM api_keys
    WHERE id = ?}, undef, $id);

my @bad = (
    [ 'POST', "/admin/keys/999999/rotate", '{"grace_seconds": 60}', 404,
      'not_found', 'rotation of an unknown id' ],
    [ 'POST', "/admin/keys/$id/rotate", '{"grace_seconds": -1}', 400,
      'invalid_body', 'a negative grace' ],
    [ 'POST', "/admin/keys/$id/rotate", '{"grace_seconds": 2592001}', 400,
      'invalid_body', 'a grace over 30 days' ],
    [ 'POST', "/admin/keys/$id/rotate", '{"grace_seconds": "60"}', 400,
      'invalid_body', 'a grace as a string' ],
    [ 'POST', "/admin/keys/$id/rotate", '{}', 400,
      'invalid_body', 'no grace' ],
    [ 'POST', "/admin/keys/$id/rotate", '{"grace_seconds": 1, "x": 1}', 400,
      'invalid_body', 'an unknown field of a rotation' ],
    [ 'POST', "/admin/keys/abc/rotate", '{"grace_seconds": 1}', 400,
      'invalid_id', 'a rotation of a malformed id' ],
    [ 'POST', "/admin/keys/$id/rotate", '{"grace_seconds": 1', 400,
      'invalid_json', 'a rotation of broken JSON' ],
    [ 'PATCH', "/admin/keys/999999", '{"note": "x"}', 404,
      'not_found', 'a change of an unknown id' ],
    [ 'PATCH', "/admin/keys/$id", '{"owner": "not an address"}', 400,
      'invalid_body', 'a bad e-mail address' ],
    [ 'PATCH', "/admin/keys/$id", '{"owner": "a@b@example.com"}', 400,
      'invalid_body', 'an address with two @' ],
    [ 'PATCH', "/admin/keys/$id", '{"tier": "anonymous"}', 400,
      'invalid_body', 'the anonymous tier' ],
    [ 'PATCH', "/admin/keys/$id", '{"tier": "gold"}', 400,
      'invalid_body', 'an undeclared tier' ],
    [ 'PATCH', "/admin/keys/$id", '{"name": "x"}', 400,
      'invalid_body', 'an unknown field of a change' ],
    [ 'PATCH', "/admin/keys/$id", '{}', 400,
      'invalid_body', 'nothing to change' ],
    [ 'PATCH', "/admin/keys/$id", '{"note": "a\u0001b"}', 400,
      'invalid_body', 'a note with a control character' ],
    [ 'PATCH', "/admin/keys/$id", '{"expires_at": "2001-01-01T00:00:00Z"}',
      400, 'invalid_body', 'an expiry in the past' ],
    [ 'PATCH', "/admin/keys/$id", '{"expires_at": "tomorrow"}', 400,
      'invalid_body', 'an expiry that is no time' ],
    [ 'DELETE', "/admin/keys/$id/rotate", undef, 405,
      'method_not_allowed', 'a revocation of a rotation' ],
    [ 'POST', "/admin/keys/$id/rotate/x", '{"grace_seconds": 1}', 404,
      'not_found', 'a path under a rotation' ],
);

for my $c (@bad) {
    my ($method, $path, $body, $status, $error, $what) = @$c;
    $r = $a->keyed($admin, $method, $path, $body);
    is($r->{status}, $status, "$what: $status");
    is($r->{json}{error}, $error, "$what: $error");
    ok(length($r->{json}{detail} // ''), "$what: a detail");
}

is_deeply($dbh->selectrow_arrayref(q{SELECT encode(secret_hash, 'hex'),
    tier, owner, note, expires_at, previous_hash FROM api_keys
    WHERE id = ?}, undef, $id), $before, 'bad input changed nothing');

$r = $a->keyed('dr_FAKEFAKE_' . ('F' x 32), 'POST',
    "/admin/keys/$id/rotate", '{"grace_seconds": 60}');
is($r->{status}, 401, 'no rotation without an admin key');
$r = $a->keyed($old, 'PATCH', "/admin/keys/$id", '{"tier": "pro"}');
is($r->{status}, 403, 'nor a change with a key of another tier');


# a rotation with a grace of 60 s: both secrets work on both nodes

$r = $a->keyed($admin, 'POST', "/admin/keys/$id/rotate",
    '{"grace_seconds": 60}');
is($r->{status}, 200, 'rotated with a grace of 60 s');
my $new = $r->{json}{key} // '';
is($r->{json}{id}, $id, 'the same key id');
is($r->{json}{prefix}, $prefix, 'the same prefix');
is($r->{json}{tier}, 'free', 'the same tier');
like($new, qr/^dr_\Q$prefix\E_[A-Za-z0-9]{32}$/, 'a new secret, shown once');
isnt($new, $old, 'not the old one');
ok($r->{json}{previous_secret_until}, 'the end of the grace is shown');

ok(DR::Test::wait_for(sub { all_are($b, $new, 200) }, 30),
   'node b accepts the new secret');
ok(all_are($a, $new, 200), 'node a accepts the new secret');
ok(all_are($a, $old, 200), 'node a still accepts the old one');
ok(all_are($b, $old, 200), 'node b still accepts the old one');

$r = $a->keyed($admin, 'GET', '/admin/keys');
my ($listed) = grep { $_->{id} == $id } @{$r->{json}{keys} // []};
ok(!grep({ ($_ // '') =~ /\Q$new\E|\Q$old\E/ } values %$listed),
   'the list shows no secret');


# a short grace: the previous secret ends on both nodes

$r = $a->keyed($admin, 'POST', "/admin/keys/$id/rotate",
    '{"grace_seconds": 2}');
is($r->{status}, 200, 'rotated again, with a grace of 2 s');
my $newer = $r->{json}{key} // '';

ok(DR::Test::wait_for(sub { all_are($b, $newer, 200) }, 30),
   'node b accepts the newest secret');

ok(DR::Test::wait_for(sub {
    all_are($a, $new, 401) && all_are($b, $new, 401) }, 30, 0.2),
   'after its grace the secret before is refused on both nodes');
ok(all_are($a, $old, 401) && all_are($b, $old, 401),
   'the first secret too');
ok(all_are($a, $newer, 200) && all_are($b, $newer, 200),
   'the newest works on both nodes');

# a grace of 0: the secret before ends at once
$r = $a->keyed($admin, 'POST', "/admin/keys/$id/rotate",
    '{"grace_seconds": 0}');
my $newest = $r->{json}{key} // '';
ok(DR::Test::wait_for(sub {
    all_are($b, $newer, 401) && all_are($b, $newest, 200) }, 30),
   'with no grace the secret before is refused at once');


# PATCH: the tier changes the limits seen on the other node

my $limit = sub { ping($b, $newest)->{headers}{'x-ratelimit-limit'} // '' };
my $free = $limit->();
ok($free, "node b applies the free tier's limit ($free)");

$r = $a->keyed($admin, 'PATCH', "/admin/keys/$id",
    encode_json({ tier => 'pro', owner => 'Partner@Example.com',
                  note => undef,
                  expires_at => '2099-01-01T00:00:00Z' }));
is($r->{status}, 200, 'tier, owner, note and expiry changed');
is($r->{json}{tier}, 'pro', 'the tier is pro');
is($r->{json}{owner}, 'Partner@Example.com', 'the owner');
is($r->{json}{note}, undef, 'the note cleared');
like($r->{json}{expires_at} // '', qr/^2099-01-01T/, 'the expiry');
my $t0 = time;

my $pro = '';
ok(DR::Test::wait_for(sub { $pro = $limit->(); $pro && $pro ne $free },
                      30, 0.02),
   "node b applies the pro tier's limit ($pro), long before its cache "
   . 'would forget the key')
    and diag(sprintf 'node b saw the new tier %.0f ms after the change',
                     1000 * (time - $t0));

$r = $a->keyed($admin, 'PATCH', "/admin/keys/$id",
    '{"expires_at": null}');
is($r->{json}{expires_at}, undef, 'an expiry cleared with null');


# the audit trail: every change, no secret

my $audit = $dbh->selectall_arrayref(q{SELECT action, detail::text
    FROM admin_audit WHERE target = ? ORDER BY id}, undef, $id);
is_deeply([ map { $_->[0] } @$audit ],
    [ qw(key.create key.rotate key.rotate key.rotate key.update
         key.update) ], 'each change is in the audit trail');
like($audit->[1][1], qr/"grace_seconds": 60/, 'with the grace');
like($audit->[4][1], qr/"tier": "pro"/, 'and what changed');
ok(!grep({ $_->[1] =~ /\Q$newest\E|\Q$old\E/ } @$audit),
   'and no secret');

my $log = $a->error_log . $b->error_log;
my $secret_seen = grep { index($log, substr($_, 12)) >= 0 }
    $old, $new, $newer, $newest;
ok(!$secret_seen, 'no secret in the error logs');

# a revoked key is not changed, as it is not rotated
my $gone = $a->create_key(tier => 'free', name => 'to revoke');
my ($gone_id) = $a->dbh->selectrow_array(
    'SELECT id FROM api_keys WHERE prefix = ?', undef, substr($gone, 3, 8));
is($a->keyed($admin, 'DELETE', "/admin/keys/$gone_id")->{status}, 200,
   'a key revoked');
my $p = $a->keyed($admin, 'PATCH', "/admin/keys/$gone_id", '{"note": "x"}');
is($p->{status}, 409, 'PATCH of a revoked key: 409');
is($p->{json}{error}, 'revoked_key', '... revoked_key');
is($a->dbh->selectrow_array('SELECT note FROM api_keys WHERE id = ?',
   undef, $gone_id), undef, 'and nothing changed');

$a->stop;
$b->stop;

done_testing;

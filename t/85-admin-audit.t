# The audit trail: every admin action that changes something is recorded
# by the same statement as the action, with the acting key, its client's
# address, the time and what changed, never a secret; GET /admin/audit
# reads it, filtered by time and by key.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use JSON::PP;
use Test::More;

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
$t->start;

my $admin = $t->create_key(tier => 'admin', name => 'operator');
my ($admin_id) = $t->dbh->selectrow_array(
    q{SELECT id FROM api_keys WHERE name = 'operator'});
my $other = $t->create_key(tier => 'admin', name => 'other-operator');

sub admin {
    my ($method, $path, $body, $key) = @_;
    return $t->keyed($key // $admin, $method, $path,
        defined $body ? encode_json($body) : undef);
}

my $r = admin('POST', '/admin/keys', { name => 'partner-a', tier => 'pro' });
is($r->{status}, 201, 'a key is made');
my $made = $r->{json};
my $secret = $made->{key};
ok($secret, 'its secret is shown once');

is(admin('POST', '/admin/domains', { domains => ['audit.example'],
    category => 'Testing' })->{status}, 200, 'a domain is added');
is(admin('DELETE', '/admin/domains/audit.example')->{status}, 200,
    'and removed');
is(admin('DELETE', "/admin/keys/$made->{id}")->{status}, 200,
    'the key is revoked');

$r = admin('GET', '/admin/audit');
is($r->{status}, 200, 'GET /admin/audit');
my @actions = reverse @{$r->{json}{actions} // []};
is_deeply([map { $_->{action} } @actions],
    [qw(key.create domains.add domain.remove key.revoke)],
    'every action, in order');
is_deeply([map { $_->{key_id} } @actions], [($admin_id) x 4],
    'each by the acting key');
is_deeply([map { $_->{address} } @actions], [('127.0.0.1') x 4],
    'from its address');
like($actions[0]{at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    'with its time');
is($actions[0]{target}, $made->{id}, 'the key made is the target');
is_deeply([@{$actions[0]{detail}}{qw(name tier prefix)}],
    ['partner-a', 'pro', $made->{prefix}], 'what was made');
is_deeply($actions[1]{detail}{domains}, ['audit.example'],
    'the domains added');
is($actions[2]{target}, 'audit.example', 'the domain removed');
unlike($r->{content}, qr/\Q$secret\E/, 'no secret in the trail');
my ($hash) = $t->dbh->selectrow_array(
    q{SELECT encode(secret_hash, 'hex') FROM api_keys WHERE id = ?}, undef,
    $made->{id});
unlike($r->{content}, qr/$hash/, 'not even its hash');

# a budget set is an action too
is(admin('POST', '/admin/budgets', { scope => 'global', period => 'day',
    usd => 12.5 })->{status}, 200, 'a budget is set');
$r = admin('GET', '/admin/audit');
my ($budget) = grep { $_->{action} eq 'budget.set' } @{$r->{json}{actions}};
is($budget && $budget->{target}, 'global/day', 'the budget set is recorded');
is($budget && $budget->{detail}{usd}, 12.5, 'with its dollars');

# filters
admin('POST', '/admin/domains', { domains => ['second.example'] }, $other);
my ($other_id) = $t->dbh->selectrow_array(
    q{SELECT id FROM api_keys WHERE name = 'other-operator'});
$r = admin('GET', "/admin/audit?key=$other_id");
is_deeply([map { $_->{action} } @{$r->{json}{actions}}], ['domains.add'],
    'by key: the other operator\'s one action');
$r = admin('GET', '/admin/audit?since=2999-01-01T00:00:00Z');
is_deeply($r->{json}{actions}, [], 'since the future: nothing');

# bad input and other tiers change nothing and read nothing
is(admin('GET', '/admin/audit?since=yesterday')->{status}, 400,
    'a malformed since: 400');
is(admin('GET', '/admin/audit?key=x')->{status}, 400,
    'a malformed key: 400');
my $free = $t->create_key(tier => 'free', name => 'nobody');
is(admin('GET', '/admin/audit', undef, $free)->{status}, 403,
    'a key of another tier: 403');
is(admin('POST', '/admin/audit')->{status}, 405, 'POST: 405');
my ($rows) = $t->dbh->selectrow_array('SELECT count(*) FROM admin_audit');
is($rows, 6, 'refusals and reads wrote nothing');

$t->stop;
$t->check_log;
done_testing();

# The API keys' server secret rotated without downtime: with
# "dr_key_secret_file NEW previous=OLD" every key keeps working, a key
# used is hashed again under the new secret (for every node), and
# tools/dr-key --count-stale says how many keys still depend on the old
# one; once it says 0, the old secret goes and nothing breaks.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep);

my $conf = <<'EOF';
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRETS%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier wide rate=100/s burst=100 daily=0;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth required; empty_gif; }
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF

my $t = DR::Test->new(db => 1, no_start => 1);
my $old = $t->{secret};
my $new = $t->dir . '/key_secret_new';
open my $fh, '>', $new or die;
print $fh "fake-new-server-secret-for-the-test-" . ('x' x 16) . "\n";
close $fh;
chmod 0600, $new;

sub conf {
    my ($secrets) = @_;
    (my $c = $conf) =~ s/%%SECRETS%%/$secrets/;
    $t->write_conf($c);
}

sub stale {
    my ($file) = @_;
    my $c = $t->{cluster};
    my $out = `$DR::Test::TOP/tools/dr-key --secret-file $file --count-stale --host $c->{socket} --port $c->{port} --user $c->{user} --dbname $t->{dbname}`;
    chomp $out;
    return $out;
}

sub ok_key {
    my ($key) = @_;
    return $t->get('/x', headers => { 'X-API-Key' => $key })->{status};
}

conf($old);
$t->start;

my $used = $t->create_key(tier => 'wide', name => 'used');
my $idle = $t->create_key(tier => 'wide', name => 'idle');
is(ok_key($used), 200, 'a key of the old secret works');
is(stale($new), 2, 'two keys depend on the old secret');
is(stale($old), 0, '(and none on another than the old one)');

# rotate: the new secret, the old one beside it
conf("$new previous=$old");
$t->reload;
ok(DR::Test::wait_for(sub { ok_key($used) == 200 }, 30),
    'after the reload the key still works');
ok(DR::Test::wait_for(sub { stale($new) == 1 }, 30),
    'used once, it was hashed again under the new secret: one key left');
is(ok_key($used), 200, 'and works under its new hash');
my ($version) = $t->dbh->selectrow_array(
    q{SELECT secret_version FROM api_keys WHERE name = 'used'});
like($version, qr/^[0-9a-f]{16}$/, 'it records the secret\'s fingerprint');
unlike(`cat $new`, qr/\Q$version\E/, 'which is not the secret');

# a key made now by the admin API is made under the new secret (the admin
# key, made with the old file, is hashed again as it is used)
my $admin = $t->create_key(tier => 'admin', name => 'admin');
my $r = $t->keyed($admin, 'POST', '/admin/keys',
    '{"name":"fresh","tier":"wide"}');
is($r->{status}, 201, 'a key made by the admin API');
is(ok_key($r->{json}{key}), 200, 'works');
ok(DR::Test::wait_for(sub { stale($new) == 1 }, 30),
    'only the idle key still depends on the old secret');

# the idle key is used: nothing is left on the old one
is(ok_key($idle), 200, 'the idle key, used');
ok(DR::Test::wait_for(sub { stale($new) == 0 }, 30),
    'every key now depends on the new secret');

# the old secret goes
conf($new);
$t->reload;
ok(DR::Test::wait_for(sub { ok_key($used) == 200 }, 30),
    'without the old secret every key still works');
is(ok_key($idle), 200, 'the idle one too');
is(ok_key($r->{json}{key}), 200, 'and the fresh one');

my ($bad) = ('dr_zzzzzzzz_' . 'A' x 32);
is(ok_key($bad), 401, 'an unknown key is still refused');
unlike($t->error_log, qr/fake-new-server-secret/, 'no secret in the log');

$t->stop;
$t->check_log;
done_testing();

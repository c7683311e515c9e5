# Configuration: nginx -t accepts a good configuration and refuses a bad
# one with a message naming the directive.  Secrets stay out of the
# configuration and of the log: a password in dr_pg is refused, libpq's
# reason for refusing a conninfo never repeats a piece of it, a key file
# others may read is refused, and a provider's plain-http base URL must
# name this machine as its host, not merely begin with it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;

my $t = DR::Test->new(no_start => 1);

sub conf_result {
    my ($http) = @_;
    $t->write_conf($http);
    return $t->test_conf;
}

# an [emerg] line of nginx -t that says exactly this
sub emerg {
    my ($message) = @_;
    return qr/\[emerg\] \d+#\d+: \Q$message\E/;
}

my ($rc, $out) = conf_result(<<'EOF');
    dr_pg "host=/run/postgresql dbname=app";
    dr_pg_replica "host=127.0.0.1 port=5433 dbname=app";
    dr_pg_pool_size 4;
    dr_pg_connect_timeout 2s;
    dr_pg_query_timeout 5s;
    server { listen 127.0.0.1:%%PORT%%; location / { dr_api; } }
EOF
is($rc, 0, 'a good configuration passes nginx -t') or diag($out);

my @bad = (
    [ 'dr_pg "host=/tmp port";',
      qr/invalid conninfo in "dr_pg": missing "=" after "port"/,
      'a conninfo without "="' ],
    [ 'dr_pg "colour=blue";',
      qr/invalid conninfo in "dr_pg": invalid connection option "\.\.\."/,
      'an unknown conninfo option' ],
    [ 'dr_pg "";',
      qr/"dr_pg" needs a libpq conninfo/,
      'an empty conninfo' ],
    [ "dr_pg \"dbname=a\";\n dr_pg \"dbname=b\";",
      qr/"dr_pg" directive is duplicate/,
      'two primaries' ],
    [ 'dr_pg_replica "dbname=a";',
      qr/"dr_pg_replica" needs a "dr_pg" primary/,
      'a replica without a primary' ],
    [ "dr_pg \"dbname=a\";\n dr_pg_replica \"host=/tmp port\";",
      qr/invalid conninfo in "dr_pg_replica"/,
      'a bad replica conninfo' ],
    [ "dr_pg \"dbname=a\";\n dr_pg_pool_size 0;",
      qr/"dr_pg_pool_size" must be between 1 and 1024, not 0/,
      'a pool of no connections' ],
    [ "dr_pg \"dbname=a\";\n dr_pg_pool_size many;",
      qr/"dr_pg_pool_size" directive invalid number/,
      'a pool size that is no number' ],
    [ "dr_pg \"dbname=a\";\n dr_pg_query_timeout soon;",
      qr/"dr_pg_query_timeout" directive invalid value/,
      'a timeout that is no time' ],
    [ 'dr_pg "host=no-such-host.invalid dbname=a";',
      qr/host "no-such-host\.invalid" of the primary database in conninfo could not be resolved/,
      'a host name that does not resolve' ],
    [ "dr_pg \"dbname=a\";\n server { listen 127.0.0.1:%%PORT%%; "
      . "location / { dr_api on; } }",
      qr/invalid number of arguments in "dr_api" directive/,
      'dr_api takes no argument' ],
    [ "dr_pg \"dbname=a\";\n dr_runner on;",
      qr/"dr_runner on" needs "dr_pg" and at least one "dr_provider"/,
      'a runner with no provider' ],
    [ "dr_runner maybe;",
      qr/invalid value "maybe" in "dr_runner" directive/,
      'a runner neither on nor off' ],
    [ "dr_runner_lease 10ms;",
      qr/"dr_runner_lease" must be at least 1s/,
      'a lease too short' ],
    [ "dr_pg \"dbname=a\";\n dr_schedule weekly;",
      qr/"dr_schedule" takes "off" or a time of at least 1s, not "weekly"/,
      'a schedule that is no time' ],
    [ "dr_schedule 1d;",
      qr/"dr_schedule" needs "dr_pg"/,
      'a schedule without a database' ],
    [ "dr_jolt_severity huge;",
      qr/invalid value "huge" in .*nginx\.conf/,
      'a jolt severity that is none' ],
);

for my $case (@bad) {
    my ($http, $re, $name) = @$case;
    my ($rc, $out) = conf_result("    $http\n");
    isnt($rc, 0, "nginx -t fails: $name");
    like($out, qr/\[emerg\].*$re/, "the message says why: $name");
}

# a password is refused, "nginx -T" would print it; the message says
# where it belongs and never repeats it
for my $conninfo ('host=/tmp dbname=a user=u password=FAKE-sw0rdfish',
                  'postgresql://u:FAKE-sw0rdfish@db.example/a',
                  'dbname=a password=\'sw0rdfish not real\'')
{
    my ($rc, $out) = conf_result(qq{    dr_pg "$conninfo";\n});
    isnt($rc, 0, "a password is refused: $conninfo");
    like($out, emerg('"dr_pg" carries a password, which "nginx -T" would '
        . 'print: put it in a pgpass file (passfile= or PGPASSFILE) or a '
        . 'service file'), 'the message says where a password belongs');
    unlike($out, qr/sw0rdfish/, 'and does not repeat it');
}

# libpq quotes the conninfo it refuses, at times all of it: only option
# names and punctuation are repeated
my @quoted = (
    [ 'postgresql://u:FAKE-sw0rdfish@[::1/a',
      qr/matching "\]" in IPv6 host address in URI: "\.\.\."$/ ],
    [ 'dbname=a password=not-real sw0rdfish',
      qr/missing "=" after "\.\.\." in connection info string$/ ],
    [ 'dbname=a password=not-real sw0rdfish=x',
      qr/invalid connection option "\.\.\."$/ ],
    [ 'postgresql://u:FAKE-sw0rdfish@db.example/a?verbose',
      qr/missing key\/value separator "=" in URI query parameter: "\.\.\."$/ ],
    [ 'postgresql://u:FAKE-sw0rdfish@db.example/a?x=%zz',
      qr/invalid percent-encoded token: "\.\.\."$/ ],
);
for my $case (@quoted) {
    my ($conninfo, $re) = @$case;
    my ($rc, $out) = conf_result(qq{    dr_pg "$conninfo";\n});
    isnt($rc, 0, "nginx -t fails: $conninfo");
    my ($line) = grep { /\[emerg\]/ } split /\n/, $out;
    $line //= '';
    $line =~ s/ in \S+:\d+$//;
    like($line, qr/invalid conninfo in "dr_pg": /, 'libpq\'s reason is given');
    like($line, $re, 'with what it quoted left out');
    unlike($out, qr/sw0rdfish/, 'never a piece of the conninfo');
}

# a key file its group or other users may read or write is refused
{
    my $keys = $t->dir . '/provider.keys';
    open my $fh, '>', $keys or die "$keys: $!";
    print $fh "sk-FAKE-not-a-key-0001\n";
    close $fh;

    my $conf = "    dr_provider name=openai model=gpt-4o-mini "
        . "key_file=$keys;\n";

    for my $mode (0644, 0640, 0604, 0620) {
        chmod $mode, $keys;
        my ($rc, $out) = conf_result($conf);
        isnt($rc, 0, sprintf 'a key file of mode %04o is refused', $mode);
        like($out, emerg(qq{"dr_provider": "$keys" may be read or written }
            . 'by users other than its owner; make it readable by its owner '
            . 'only (chmod 600)'), 'and the message says what to do');
    }

    chmod 0600, $keys;
    my ($rc, $out) = conf_result($conf);
    is($rc, 0, 'a key file only its owner may read is taken') or diag($out);
    unlike($out, qr/not-a-key/, 'and its key never shown');
}

# base=: https, or plain http whose host is this machine, compared whole
$ENV{DR_TEST_KEY_CONF} = 'sim-FAKE-not-a-key-0001';
for my $base ('https://api.openai.com/v1', 'https://gw.example.com:8443/v1',
              'http://127.0.0.1:8089/openai/v1', 'http://localhost:8089/x',
              'http://[::1]:8089/openai/v1')
{
    my ($rc, $out) = conf_result("    dr_provider name=openai base=$base "
        . "model=gpt-4o-mini key_env=DR_TEST_KEY_CONF;\n");
    is($rc, 0, "base=$base is taken") or diag($out);
}

my $userinfo = "the URL carries user information (an '\@') before its path";
my $local = 'plain http goes only to this machine: 127.0.0.1, [::1] or '
    . 'localhost';
my @bases = (
    [ 'http://127.0.0.1@evil.example/v1', $userinfo ],
    [ 'http://localhost:8089@evil.example/', $userinfo ],
    [ 'https://user:not-a-password@api.openai.com/v1', $userinfo ],
    [ 'http://127.0.0.1?@evil.example/', $userinfo ],
    [ 'http://127.0.0.1.evil.example/v1', $local ],
    [ 'http://localhost.evil.example/v1', $local ],
    [ 'http://api.openai.com/v1', $local ],
    [ 'ftp://127.0.0.1/', 'the URL starts with neither https:// nor http://' ],
    [ 'https://api.openai.com:99999/v1',
      "the URL's port is not a number from 1 to 65535" ],
);
for my $case (@bases) {
    my ($base, $why) = @$case;
    my ($rc, $out) = conf_result("    dr_provider name=openai base=$base "
        . "model=gpt-4o-mini key_env=DR_TEST_KEY_CONF;\n");
    isnt($rc, 0, "base=$base is refused");
    like($out, emerg(qq{"dr_provider" has an invalid "base=": $why; a }
        . 'provider is called over https (plain http only on this machine)'),
        'and the message says why');
    unlike($out, qr/evil|not-a-password/, 'without repeating the URL');
}

# a host name is resolved at configuration time, so no worker ever waits
# on DNS
($rc, $out) = conf_result(<<'EOF');
    dr_pg "host=localhost port=5432 dbname=a";
EOF
is($rc, 0, 'a host name that resolves is accepted') or diag($out);

done_testing;

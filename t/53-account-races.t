# A sign-in whose password is hashed in nginx's thread pool while the
# client's connection stays busy: the request goes on only once the hash
# is made.  The connection's write event is made active first (a large
# answer that fills a small send buffer), then the login is sent and one
# more byte after it, while scrypt runs: that byte's event must not end
# the request early (a right password answered 401 and counted as a
# failure).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use DR::Test;
use IO::Socket::INET;
use JSON::PP;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::More;
use Time::HiRes qw(sleep);

my $t = DR::Test->new(db => 1, no_start => 1);

my $jwt = $t->dir . '/jwt_secret';
open my $fh, '>', $jwt or die "$jwt: $!";
print $fh 'FAKE-jwt-secret-of-the-race-test-' . ('x' x 24) . "\n";
close $fh;
chmod 0600, $jwt;

$t->write_conf(<<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_jwt_secret_file %%DIR%%/jwt_secret;
    dr_auth_cache zone=keys:1m ttl=300s;
    dr_limit_zone zone=limits:1m;
    dr_tier anonymous rate=100/s burst=100 daily=100000;
    dr_tier login rate=100/s burst=100;
    sendfile off;

    server {
        listen 127.0.0.1:%%PORT%% sndbuf=4k;
        location / { dr_auth optional; dr_api; }
    }
EOF
$t->start;

my $password = 'FAKE-pass-w0rd-race';
my $r = $t->http('POST', '/api/auth/register',
    body => encode_json({ email => 'race@example.com',
                          password => $password }),
    headers => { 'Content-Type' => 'application/json' });
is($r->{status}, 201, 'an account');

# reads one answer of a kept-alive connection
sub answer {
    my ($s) = @_;
    my ($all, $buf, $len) = ('', '', undef);
    local $SIG{ALRM} = sub { die "no answer\n" };
    alarm 30;
    while (sysread($s, $buf, 65536)) {
        $all .= $buf;
        if (!defined $len && $all =~ /Content-Length: (\d+)\r\n.*?\r\n\r\n/si)
        {
            $len = $1 + $+[0];
        }
        last if defined $len && length($all) >= $len;
    }
    alarm 0;
    return $all;
}

my %codes;
for my $try (1 .. 8) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port)
        or die "connect: $!";
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);

    # the document does not fit the send buffer: nginx waits to write
    print $s "GET /api/openapi.json HTTP/1.1\r\nHost: race\r\n\r\n";
    sleep 0.3;
    answer($s);

    my $body = encode_json({ email => 'race@example.com',
                             password => $password });
    print $s "POST /api/auth/login HTTP/1.1\r\nHost: race\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    sleep 0.005;
    print $s 'G';

    my ($code) = answer($s) =~ m{^HTTP/1\.1 (\d+)};
    $codes{$code // 'none'}++;
    close $s;
}

is_deeply(\%codes, { 200 => 8 },
          'each right password signs in, whatever else the client sends')
    or diag(explain(\%codes));

my $dbh = $t->dbh;
is($dbh->selectrow_array('SELECT count(*) FROM login_failures'), 0,
   'and no failure is counted');

$t->stop;

done_testing;

# What the pool sends and logs when it connects, against a server of the
# test's own that records the first packet of each connection and hangs
# up:
#
# - with a Kerberos credential cache in the workers' environment, libpq's
#   default gssencmode=prefer would ask for GSSAPI encryption first, and
#   the Kerberos library would then look for its KDC with blocking calls
#   in the worker; the pool asks for none, unless the conninfo says so;
# - libpq's several-line reason for the failure ("server closed the
#   connection unexpectedly", then tab-indented lines) is logged as one
#   line of exactly its words, nothing read past its end.

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

use constant GSSENC_REQUEST => 80877104;
use constant STARTUP_3_0    => 196608;

my $dir = tempdir('dr-pg-connect-XXXXXX', TMPDIR => 1,
    CLEANUP => !$ENV{DR_KEEP});
chmod 0711, $dir;

# a credential cache (format 0x0504) holding a ticket-granting ticket for
# a realm that does not exist, valid for a day; the ticket is no ticket,
# and nothing here ever reaches a KDC
my $ccache = "$dir/krb5cc";
{
    my $cs = sub { pack 'N/a*', $_[0] };
    my $principal = sub {
        my ($realm, @parts) = @_;
        return pack('NN', 1, scalar @parts) . $cs->($realm)
            . join '', map { $cs->($_) } @parts;
    };
    my $client = $principal->('NOWHERE.INVALID', 'test');
    my $now = time;
    my $credential = $client
        . $principal->('NOWHERE.INVALID', 'krbtgt', 'NOWHERE.INVALID')
        . pack('n', 18) . $cs->("\0" x 32)
        . pack('NNNN', $now, $now, $now + 86400, 0)
        . pack('CN', 0, 0x40e10000) . pack('NN', 0, 0)
        . $cs->('not-a-ticket') . $cs->('');
    open my $fh, '>', $ccache or die "$ccache: $!";
    binmode $fh;
    print $fh pack('nn', 0x0504, 0) . $client . $credential;
    close $fh;
    chmod 0644, $ccache;    # the workers run as nobody
}

# the server: the code of each connection's first packet, one a line
my $pg_port = DR::Test::free_port();
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $pg_port, Listen => 64, ReuseAddr => 1) or die "listen: $!";
my $seen = "$dir/first-packets";

my $server = fork // die "fork: $!";
if ($server == 0) {
    while (my $c = $listen->accept) {
        my $buf = '';
        my $deadline = time + 5;
        while (length $buf < 8 && time < $deadline) {
            my $n = sysread($c, $buf, 8 - length $buf, length $buf);
            last unless $n;
        }
        if (length $buf == 8) {
            open my $fh, '>>', $seen or die;
            printf $fh "%d\n", (unpack 'NN', $buf)[1];
            close $fh;
        }
        close $c;
    }
    exit 0;
}
close $listen;

END { kill 'TERM', $server if $server }

sub first_packets {
    open my $fh, '<', $seen or return ();
    my @codes = map { chomp; $_ } <$fh>;
    unlink $seen;
    return @codes;
}

sub node {
    my ($conninfo) = @_;
    return DR::Test->new(workers => 1,
        main => "env KRB5CCNAME=FILE:$ccache;", http => <<"EOF");
    dr_pg "host=127.0.0.1 port=$pg_port user=u dbname=d $conninfo";
    dr_pg_connect_timeout 1s;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF
}

# the pool's own default: no GSSAPI encryption asked for
my $t = node('sslmode=disable');
my $r = $t->get('/readyz');
is($r->{status}, 503, 'not ready: the server hangs up');

my $deadline = time + 5;
my @codes;
while (!@codes && time < $deadline) {
    sleep 0.1;
    @codes = first_packets();
}
ok(@codes, 'the pool connected') or diag($t->error_log);
ok(!grep({ $_ == GSSENC_REQUEST } @codes),
    'no GSSAPI encryption asked for, with a credential cache at hand')
    or diag("first packets: @codes");
is($codes[0], STARTUP_3_0, 'the first packet starts the session');

# libpq's reason, on one line, its own words and nothing after them
my ($line) = grep { /could not connect to PostgreSQL/ }
    split /\n/, $t->error_log;
$line //= '';
unlike($line, qr/\0/, 'the logged reason holds no NUL byte');
my $reason = qq{connection to server at "127.0.0.1", port $pg_port failed: }
    . 'server closed the connection unexpectedly This probably means the '
    . 'server terminated abnormally before or while processing the request.';
like($line, qr/\): \Q$reason\E(?:,|$)/,
    'one line of libpq\'s words, runs of new lines and tabs one space')
    or diag(join '', map { sprintf '\\x%02x', ord } split //,
        substr($line, -24));
$t->stop;

# the operator's own setting stands: with gssencmode=prefer, libpq asks
# first (which shows the credential cache is one libpq would use)
$t = node('sslmode=disable gssencmode=prefer');
$r = $t->get('/readyz');
is($r->{status}, 503, 'not ready either');
$deadline = time + 5;
@codes = ();
while (!@codes && time < $deadline) {
    sleep 0.1;
    @codes = first_packets();
}
is($codes[0], GSSENC_REQUEST,
    'gssencmode=prefer in the conninfo asks for GSSAPI encryption first')
    or diag("first packets: @codes");
$t->stop;

done_testing;

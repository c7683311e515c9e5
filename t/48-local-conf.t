# The http block of conf/local.conf, the one "make run" serves, on a test's
# own node: the original API's allowances per endpoint let a browser page
# that makes many calls load (25 quick anonymous rankings all 200), and
# still limit each endpoint on its own (the 31st rankings of a minute is
# refused, by the rankings policy, while the stats still answer).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use Test::More;

my $file = "$DR::Test::TOP/conf/local.conf";
open my $fh, '<', $file or die "$file: $!";
my $conf = do { local $/; <$fh> };
close $fh;

my ($http) = $conf =~ /^http \{\n(.*)^\}/ms or die 'no http block';
$http =~ s/^\s*dr_pg "[^"]*";/    dr_pg "%%PG%%";/m;
$http =~ s/^\s*\w+_temp_path .*\n//mg;
$http =~ s/\@KEY_SECRET\@/%%SECRET%%/g;
$http =~ s/\@JWT_SECRET\@/%%DIR%%\/jwt_secret/g;
$http =~ s/\@HTTP_PORT\@/%%PORT%%/g;
$http =~ s/\@SIM_PORT\@/9/g;
$http =~ s/\@HTML_DIR\@/$DR::Test::TOP\/html/g;
$http =~ s{access_log logs/}{access_log %%DIR%%/}g;
unlike($http, qr/\@\w+\@/, 'every value of make run is filled in');

local $ENV{DR_SIM_KEY} = 'sim-local-not-a-secret';
my $t = DR::Test->new(db => 1, no_start => 1, http => $http);
open my $jfh, '>', $t->dir . '/jwt_secret' or die "jwt_secret: $!";
print $jfh 'FAKE-access-token-secret-' . ('x' x 24), "\n";
close $jfh;
chmod 0600, $t->dir . '/jwt_secret';
DR::Fixture::load($t->dbh);
$t->start;

my @s = map { $t->get("/api/rankings?_t=$_")->{status} } 1 .. 25;
is(scalar(grep { $_ == 200 } @s), 25,
    '25 quick anonymous rankings from one address: all 200');

@s = map { $t->get('/api/rankings')->{status} } 26 .. 31;
is_deeply(\@s, [200, 200, 200, 200, 200, 429],
    'the 31st of the minute is refused: the original allowed 30');
my $r = $t->get('/api/rankings');
like($r->{headers}{ratelimit} // '', qr/^"rankings";r=0/,
    'by the rankings policy');
like($r->{headers}{'ratelimit-policy'} // '',
    qr/"anonymous";q=120;w=60, "rankings";q=30;w=60, "rankings_hour";q=200;w=3600/,
    'the tier and both windows of the endpoint are listed');

is($t->get('/api/stats')->{status}, 200, 'the stats have their own allowance');
is($t->get('/healthz')->{status}, 200, 'health is never limited');

$t->stop;
$t->check_log;
done_testing();

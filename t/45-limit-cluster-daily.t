# Daily quotas hold across the nodes of a cluster: each node tells the
# others, through PostgreSQL, how much of a key's daily quota it admitted,
# so that a quota of 10 is 10 whichever nodes the requests reach.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep);

my $conf = <<'CONF';
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_limit_sync interval=500ms node=%%NODE%%;
    dr_usage_flush 60s;
    dr_tier daily10 rate=100/s burst=100 daily=10;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth required; empty_gif; }
    }
CONF

my $a = DR::Test->new(db => 1, no_start => 1);

my $b = DR::Test->new(no_start => 1);
$b->{cluster} = $a->{cluster};
$b->{dbname} = $a->{dbname};
$b->{borrowed_db} = 1;
$b->{secret} = $a->{secret};

(my $ca = $conf) =~ s/%%NODE%%/node-a/;
(my $cb = $conf) =~ s/%%NODE%%/node-b/;
$a->write_conf($ca);
$b->write_conf($cb);
$a->start;
$b->start;

my $key = $a->create_key(tier => 'daily10');
my %k = ('X-API-Key' => $key);

my @on_a = map { $a->get('/q', headers => \%k)->{status} } 1 .. 6;
is_deeply(\@on_a, [(200) x 6], 'six requests on node a: all admitted');

# the usage flush is a minute away: only the cluster sync can tell node b
sleep 2;

my @on_b = map { $b->get('/q', headers => \%k)->{status} } 1 .. 6;
is_deeply(\@on_b, [(200) x 4, (429) x 2],
    'six on node b two seconds later: four admitted, then the quota');

my $r = $b->get('/q', headers => \%k);
like($r->{headers}{ratelimit} // '', qr/"daily";r=0;/,
    'node b says nothing is left of the daily quota');
like($r->{content}, qr/"error":"rate_limited"/, 'a refusal');

my $admitted = grep { $_ == 200 } @on_a, @on_b;
is($admitted, 10, 'exactly 10 admitted in all');

# and back on node a, which learns node b's four
sleep 2;
is($a->get('/q', headers => \%k)->{status}, 429,
    'node a then refuses too');

$a->stop;
$b->stop;
$a->check_log;
$b->check_log;
done_testing();

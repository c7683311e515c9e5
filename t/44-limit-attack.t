# Limits under attack: a flood of anonymous clients from thousands of
# addresses (X-Forwarded-For through realip) into a small zone cannot push
# out a drained key's bucket, so the key stays drained; the flood is
# refused instead of forgiven; the addresses of one IPv6 /64 are one
# anonymous client; eviction frees only full buckets.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;

plan skip_all => 'wrk is needed' unless -x '/usr/bin/wrk';

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:64k;
    dr_tier free rate=10/m burst=5 daily=1000;
    dr_tier anonymous rate=10/m burst=5 daily=1000;

    log_format outcome '$status $dr_tier $dr_limit_status';

    server {
        listen 127.0.0.1:%%PORT%%;
        listen [::1]:%%PORT%%;
        access_log %%DIR%%/outcome.log outcome;

        set_real_ip_from 127.0.0.1;
        set_real_ip_from ::1;
        real_ip_header X-Forwarded-For;

        location / {
            dr_auth optional;
            empty_gif;
        }
    }
EOF
$t->start;

my $key = $t->create_key(tier => 'free', name => 'victim');
my %k = ('X-API-Key' => $key);

my @s = map { $t->get('/', headers => \%k)->{status} } 1 .. 6;
is_deeply(\@s, [200, 200, 200, 200, 200, 429],
    'the free key is drained: burst 5, then 429');

# one IPv6 /64 is one client
my $v6 = 0;
for my $i (1 .. 20) {
    my $r = $t->get('/', headers => {
        'X-Forwarded-For' => sprintf('2001:db8:7:9:%x::%x', $i, $i) });
    $v6++ if $r->{status} == 200;
}
ok($v6 <= 6, "20 addresses of one IPv6 /64: $v6 admitted (burst 5)");
ok($v6 >= 5, 'and the /64 did get its burst');

my $other = $t->get('/', headers => { 'X-Forwarded-For' => '2001:db8:8::1' });
is($other->{status}, 200, 'another /64 is another client')
    or diag($other->{content});

# a flood of anonymous clients, each from an address of its own
my $lua = $t->dir . '/flood.lua';
open my $fh, '>', $lua or die;
print $fh <<'LUA';
math.randomseed(os.time())
request = function()
    local ip = string.format("10.%d.%d.%d", math.random(0, 255),
                             math.random(0, 255), math.random(1, 254))
    return wrk.format("GET", "/", { ["X-Forwarded-For"] = ip })
end
LUA
close $fh;
my $out = `wrk -t 2 -c 32 -d 3s -s $lua http://127.0.0.1:@{[$t->port]}/ 2>&1`;
my ($n) = $out =~ /(\d+) requests in/;
diag("$n anonymous requests from random addresses in 3 s");
ok($n && $n > 500, 'the flood reached the node') or diag($out);

my ($anon_ok, $anon_full) = (0, 0);
open my $log, '<', $t->dir . '/outcome.log' or die;
while (<$log>) {
    my ($status, $tier) = split;
    next unless $tier eq 'anonymous';
    $anon_ok++ if $status == 200;
    $anon_full++ if $status == 429;
}
close $log;
ok($anon_full > 0, "the zone filled: $anon_full anonymous requests were "
    . 'refused instead of another client being forgiven');
ok($anon_ok > 0, "$anon_ok anonymous clients found room in their reserve");

@s = map { $t->get('/', headers => \%k)->{status} } 1 .. 3;
my $admitted = grep { $_ == 200 } @s;
ok($admitted <= 1, "after the flood the key is still drained: $admitted "
    . 'of 3 admitted (at most the one token 10/m gave meanwhile)');

$t->stop;
$t->check_log;
done_testing();

# The example configurations: conf/production.conf, conf/multi-node.conf
# and conf/gateway.conf
# pass "nginx -t" with the module (adapted to a temporary directory, with
# a throw-away certificate and fake secret files), use only directives the
# README documents, hold what they promise (TLS, realip, JSON error pages,
# replicas, pgpass, provider key files; cluster limits, the schedule,
# health checks), and never let "nginx -T" show a secret.
# conf/load-balancer.conf passes "nginx -t" without the module.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::ExampleConf;
use DR::Test;
use Test::More;

my $module = $DR::Test::CFG{module};
ok(-f $module, "the module is built ($module)");

open my $fh, '<', "$DR::Test::TOP/README.md" or die;
my %documented = map { /^#### (dr_\w+)/ ? ($1 => 1) : () } <$fh>;
close $fh;
ok(keys %documented > 20, 'the README documents the directives');

my %promise = (
    'production.conf' => [
        [ qr/^\s*listen 443 ssl http2/m,              'TLS on 443' ],
        [ qr/^\s*ssl_certificate_key /m,              'a certificate' ],
        [ qr/^\s*set_real_ip_from /m,                 'realip from the LB' ],
        [ qr/^\s*real_ip_header X-Forwarded-For;/m,   'the LB\'s header' ],
        [ qr{error_page 400 .*/_dr_error;},           'JSON error pages' ],
        [ qr/^\s*dr_pg_replica "/m,                   'a replica' ],
        [ qr/passfile=\S+/,                           'a pgpass file' ],
        [ qr/key_file=\S+/,                           'provider key files' ],
        [ qr/dr_auth_cache zone=keys:32m/,            'keys sized for 100k' ],
        [ qr/dr_limit_zone zone=limits:64m/,          'limits sized for 100k' ],
    ],
    'gateway.conf' => [
        [ qr/^\s*dr_auth_hide_credentials on;/m,      'credentials stripped' ],
        [ qr/proxy_set_header X-Consumer-Id \$dr_key_id;/, 'identity passed' ],
        [ qr/^\s*dr_limit_policy \w+ tier=\w+ rate=/m, 'a rate per tier' ],
        [ qr/dr_limit \w+ cost=\$/,                   'a cost per request' ],
        [ qr/by=address/,                              'a policy per network' ],
        [ qr{error_page 400 .*/_dr_error;},            'JSON error pages' ],
        [ qr/upstream search \{/,                      'a second application' ],
    ],
    'multi-node.conf' => [
        [ qr/^\s*dr_limit_sync interval=/m,           'cluster limits' ],
        [ qr/^\s*dr_schedule \d+d;/m,                 'the schedule' ],
        [ qr/^\s*location = \/readyz \{ dr_api; \}/m, 'a readiness check' ],
        [ qr/^\s*dr_pg_replica "/m,                   'a replica' ],
    ],
);

for my $name (qw(production.conf multi-node.conf gateway.conf)) {
    my $x = DR::ExampleConf->new($name, module => $module);

    my ($rc, $out) = $x->test;
    is($rc, 0, "$name passes nginx -t") or diag($out);
    like($out, qr/test is successful/, "$name: nginx says so");
    unlike($out, qr/\[(warn|emerg|alert)\]/, "$name: without a warning");

    my %used = map { $_ => 1 } $x->text =~ /^\s*(dr_\w+)\s/mg;
    ok(keys %used >= 8, "$name uses the module's directives");
    ok($documented{$_}, "$name: $_ is documented in the README")
        for sort keys %used;

    like($x->text, $_->[0], "$name: $_->[1]") for @{$promise{$name}};

    my $all = $x->dump;
    like($all, qr/dr_pg "host=/, "$name: nginx -T shows the configuration");
    my @shown = grep { index($all, $_) >= 0 } $x->secrets;
    ok(!@shown, "$name: nginx -T shows no secret") or diag("@shown");

    # the secret files are really read: one readable by every user is
    # refused
    my ($kf) = $x->text =~ /key_file=(\S+?);?\s/;
    next unless $kf;
    chmod 0644, $kf;
    ($rc, $out) = $x->test;
    isnt($rc, 0, "$name: a provider key file readable by all fails nginx -t");
    like($out,
         qr/\Q$kf\E" may be read or written by users other than its owner/,
         'and says which');
    chmod 0600, $kf;
}

my $lb = DR::ExampleConf->new('load-balancer.conf');
my ($rc, $out) = $lb->test;
is($rc, 0, 'load-balancer.conf passes nginx -t') or diag($out);
like($lb->text, qr/proxy_next_upstream error timeout http_502 http_503/,
    'a node answering 503 is passed over');
like($lb->text, qr/max_fails=2 fail_timeout=10s/, 'and taken out a while');

done_testing;

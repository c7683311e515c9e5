# Alerting rules (conf/prometheus/): "promtool check rules" accepts them,
# "promtool test rules" passes their unit tests, and the unit tests show
# every alert both firing and not firing, and fail when a threshold is
# changed.  Every alert has a severity and a runbook that exists in
# docs/operations.md, and every metric a rule queries is one a running
# node exports (or one listed as planned, not built yet).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Metrics;
use DR::Test;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Test::More;
use YAML::XS qw(LoadFile);

my $dir = "$DR::Test::TOP/conf/prometheus";
my @rules = glob "$dir/*.rules.yml";
my @tests = glob "$dir/*test*.yml";

ok(@rules, 'conf/prometheus/ holds rule files');
ok(@tests, 'and their unit tests');

my $promtool = `sh -c "command -v promtool"`;
chomp $promtool;
ok($promtool, 'promtool is installed (Debian package prometheus)')
    or BAIL_OUT('no promtool: make packages');

my $out = `cd $dir && promtool check rules @rules 2>&1`;
is($?, 0, 'promtool check rules passes') or diag($out);
like($out, qr/SUCCESS: \d+ rules found/, 'and finds the rules');

$out = `cd $dir && promtool test rules @tests 2>&1`;
is($?, 0, 'promtool test rules passes') or diag($out);
like($out, qr/SUCCESS/, 'every unit test succeeds');

# the unit tests can fail: with one threshold changed they do
my $tmp = tempdir('dr-rules-XXXXXX', TMPDIR => 1, CLEANUP => 1);
copy($_, $tmp) or die "copy: $!" for @rules, @tests;
{
    my ($file) = glob "$tmp/*.rules.yml";
    open my $fh, '<', $file or die;
    my $text = do { local $/; <$fh> };
    close $fh;
    ok($text =~ s/^(\s+)> 0\.05$/$1> 0.5/m, 'the 5xx threshold is changed');
    open $fh, '>', $file or die;
    print $fh $text;
    close $fh;
}
$out = `cd $tmp && promtool test rules *test*.yml 2>&1`;
isnt($?, 0, 'then promtool test rules fails');
like($out, qr/alertname: DrHigh5xxRate/, 'on the alert whose rule changed');

# every alert, its labels and annotations
my (%alerts, %exprs);
for my $file (@rules) {
    for my $group (@{LoadFile($file)->{groups}}) {
        for my $rule (@{$group->{rules}}) {
            next unless $rule->{alert};
            $alerts{$rule->{alert}} = $rule;
            $exprs{$rule->{alert}} = $rule->{expr};
        }
    }
}

my @wanted = qw(DrDatabaseUnreachable DrNotReady DrHigh5xxRate DrHigh429Rate
    DrProviderErrorRate DrProviderBreakerOpen DrDeadJobsGrowing DrRunStuck
    DrBudgetNearlySpent DrLimitZoneFull DrCacheHitRatioLow);
ok($alerts{$_}, "an alert $_") for @wanted;

open my $ops, '<', "$DR::Test::TOP/docs/operations.md"
    or die "docs/operations.md: $!";
my %anchors;
while (<$ops>) {
    next unless /^#+\s+(.*?)\s*$/;
    (my $slug = lc $1) =~ s/[^a-z0-9 -]//g;
    $slug =~ tr/ /-/;
    $anchors{$slug} = 1;
}
close $ops;

for my $name (sort keys %alerts) {
    my $a = $alerts{$name};
    like($a->{labels}{severity} // '', qr/^(critical|warning)$/,
        "$name has a severity");
    ok(($a->{annotations}{summary} // '') ne ''
        && ($a->{annotations}{description} // '') ne '',
        "$name has a summary and a description");
    my ($anchor) = ($a->{annotations}{runbook} // '')
        =~ m{^docs/operations\.md#([a-z0-9-]+)$};
    ok($anchor && $anchors{$anchor},
        "$name names a runbook of docs/operations.md")
        or diag("runbook: " . ($a->{annotations}{runbook} // 'none'));
}

# every alert is tested firing and not firing
my (%fires, %quiet);
for my $file (@tests) {
    for my $case (@{LoadFile($file)->{tests}}) {
        for my $check (@{$case->{alert_rule_test} // []}) {
            if (@{$check->{exp_alerts} // []}) {
                $fires{$check->{alertname}}++;
            } else {
                $quiet{$check->{alertname}}++;
            }
        }
    }
}
for my $name (sort keys %alerts) {
    ok($fires{$name}, "the unit tests show $name firing");
    ok($quiet{$name}, "the unit tests show $name not firing");
}
ok(!grep({ !$alerts{$_} } keys %fires, keys %quiet),
    'the unit tests name no alert the rules lack');

# the metrics the rules query, against what a node exports
my $t = DR::Metrics->node;
my %names = DR::Metrics->exported($t);
ok(keys %names > 20, 'the node exports its metric families');

for my $name (sort keys %exprs) {
    my @used = DR::Metrics->names_in($exprs{$name});
    next if $name eq 'DrNodeDown';    # Prometheus's own "up"
    ok(@used, "$name queries the module's metrics");
    for my $m (@used) {
        my $why = $DR::Metrics::PLANNED{$m};
        ok($names{$m} || $why, $names{$m} || !$why
            ? "$name: $m is exported" : "$name: $m is planned ($why)");
        diag("$m is exported now: drop it from \%DR::Metrics::PLANNED")
            if $names{$m} && $DR::Metrics::PLANNED{$m};
    }
}

$t->stop;

done_testing;

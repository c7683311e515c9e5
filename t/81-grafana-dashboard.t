# The Grafana dashboard (conf/grafana/): valid JSON that Grafana imports
# (title, uid, a Prometheus data-source variable every query uses, panels
# that do not overlap), queries that are valid PromQL (promtool checks
# them as recording rules), every metric it queries exported by a
# running node, and every family the node exports shown on some panel.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Metrics;
use DR::Test;
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

my @files = glob "$DR::Test::TOP/conf/grafana/*.json";
ok(@files, 'conf/grafana/ holds a dashboard');

my $t = DR::Metrics->node;
my %names = DR::Metrics->exported($t);
$t->stop;

for my $file (@files) {
    (my $short = $file) =~ s{.*/}{};

    open my $fh, '<', $file or die "$file: $!";
    my $text = do { local $/; <$fh> };
    close $fh;

    my $d = eval { JSON::PP->new->decode($text) };
    ok($d, "$short is valid JSON") or diag($@);
    next unless $d;

    ok($d->{title} && $d->{uid}, "$short has a title and a uid");
    ok(($d->{schemaVersion} // 0) >= 30, "$short has a schema version");

    my %vars = map { $_->{name} => $_ } @{$d->{templating}{list} // []};
    is($vars{datasource}{type}, 'datasource',
        "$short lets the user pick the data source");
    is($vars{datasource}{query}, 'prometheus', 'a Prometheus one');

    # the panels, those of rows included
    my @panels = map { ($_, @{$_->{panels} // []}) } @{$d->{panels}};
    my @graphs = grep { $_->{type} ne 'row' } @panels;
    ok(@graphs >= 10, "$short has panels");

    my (@exprs, %ids, @boxes);
    for my $p (@graphs) {
        my @targets = @{$p->{targets} // []};
        ok(@targets, "panel \"$p->{title}\" queries something");
        ok(!$ids{$p->{id}}++, "panel \"$p->{title}\" has its own id");
        for my $q (@targets) {
            ok(($q->{expr} // '') ne '', "panel \"$p->{title}\" $q->{refId} "
                . 'has an expression');
            is(($q->{datasource} // $p->{datasource} // {})->{uid},
                '${datasource}', "panel \"$p->{title}\" $q->{refId} uses "
                . 'the chosen data source');
            push @exprs, [ "$p->{title} $q->{refId}", $q->{expr} ];
        }
    }
    for my $v (values %vars) {
        my $q = ref $v->{query} ? $v->{query}{query} : $v->{query};
        push @exprs, [ "variable $v->{name}", $q ]
            if $v->{type} eq 'query';
    }

    # no two panels overlap on the 24-column grid
    my @overlaps;
    for my $i (0 .. $#panels) {
        for my $j ($i + 1 .. $#panels) {
            my ($a, $b) = map { $_->{gridPos} } @panels[$i, $j];
            push @overlaps, "$panels[$i]{title} / $panels[$j]{title}"
                if $a->{x} < $b->{x} + $b->{w} && $b->{x} < $a->{x} + $a->{w}
                && $a->{y} < $b->{y} + $b->{h} && $b->{y} < $a->{y} + $a->{h};
        }
        ok(0, "panel $panels[$i]{title} fits the grid")
            if $panels[$i]{gridPos}{x} + $panels[$i]{gridPos}{w} > 24;
    }
    ok(!@overlaps, "$short: no panels overlap") or diag(join "\n", @overlaps);

    # the queries are PromQL: promtool checks them as recording rules,
    # with Grafana's variables given values
    my $dir = tempdir('dr-grafana-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $rfh, '>', "$dir/panels.rules.yml" or die;
    print $rfh "groups:\n  - name: panels\n    rules:\n";
    for my $i (0 .. $#exprs) {
        my $e = $exprs[$i][1];
        next if $e =~ /^label_values\(/;    # Grafana's own function
        $e =~ s/\$__rate_interval/5m/g;
        $e =~ s/\$job/domain-runner/g;
        $e =~ s/\$instance/.*/g;
        $e =~ s/'/''/g;
        print $rfh "      - record: panel:$i\n        expr: '$e'\n";
    }
    close $rfh;
    my $out = `cd $dir && promtool check rules panels.rules.yml 2>&1`;
    is($?, 0, "$short: every query is valid PromQL") or diag($out);

    # the metrics, against the node's
    my %used;
    for my $e (@exprs) {
        for my $m (DR::Metrics->names_in($e->[1])) {
            ok($names{$m}, "$e->[0]: $m is exported by the module");
            $used{DR::Metrics->family($m, \%names)} = 1;
        }
    }

    my @families = grep { $_ eq DR::Metrics->family($_, \%names) }
        keys %names;
    my @unshown = sort grep { !$used{$_} } @families;
    ok(!@unshown, "$short shows every family the module exports")
        or diag("not shown: @unshown");
}

done_testing;

package DR::Metrics;

# What the module exports to Prometheus, for the tests of what queries it
# (alerting rules, dashboards):
#
#   my $t = DR::Metrics->node;          # a node with every family on
#   my %names = DR::Metrics->exported($t);   # name => family type
#   my @used = DR::Metrics->names_in($promql);
#   %DR::Metrics::PLANNED                # names not exported yet, and why
#
# Names are read from the "# TYPE" lines of a scrape, which the module
# writes whether or not a family has samples yet; a histogram family gives
# its _bucket, _sum and _count series names too.

use strict;
use warnings;

use DR::Test;
use Test::More;
use Time::HiRes qw(sleep time);

# metrics that rules may name before the module exports them: each stays
# silent until it exists (see the comments in conf/prometheus/)
our %PLANNED = (
);

# a node whose configuration turns on every part that exports metrics:
# the cache, keys and limits, providers (never called) and the queue
sub node {
    my ($class) = @_;

    # read by nginx when it reads its configuration; nothing is called
    local $ENV{DR_METRICS_FAKE_KEY} = 'fake-provider-key-not-a-secret-0001';

    my $t = DR::Test->new(db => 1, main => 'env DR_METRICS_FAKE_KEY;',
                          http => <<'EOF');
    dr_pg "%%PG%%";
    dr_cache zone=api:1m ttl=60s;
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_provider name=openai base=http://127.0.0.1:9/openai/v1
                model=gpt-4o-mini key_env=DR_METRICS_FAKE_KEY;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth optional; dr_api; }
        location = /metrics { dr_metrics; }
    }
EOF

    return $t;
}

# name => type of every series name the node exports; waits for the
# queue's figures, which worker 0 reads a second after it starts
sub exported {
    my ($class, $t) = @_;

    my ($text, %names) = ('');
    my $deadline = time + 10;

    while (time < $deadline) {
        my $r = $t->get('/metrics');
        $text = $r->{status} == 200 ? $r->{content} : '';
        last if $text =~ /^# TYPE dr_jobs /m;
        sleep 0.2;
    }

    like($text, qr/^# TYPE dr_jobs gauge$/m,
        'the node exports the queue figures too');

    while ($text =~ /^# TYPE (\w+) (\w+)$/mg) {
        my ($name, $type) = ($1, $2);
        $names{$name} = $type;
        if ($type eq 'histogram') {
            $names{"${name}_$_"} = $type for qw(bucket sum count);
        }
    }

    return %names;
}

# the module's metric names a PromQL expression uses
sub names_in {
    my ($class, $expr) = @_;
    my %seen;
    $seen{$1} = 1 while $expr =~ /\b(dr_[a-z0-9_]+)\b/g;
    return sort keys %seen;
}

# the family a series name belongs to (a histogram's _bucket, _sum and
# _count belong to it)
sub family {
    my ($class, $name, $names) = @_;
    for my $suffix (qw(_bucket _sum _count)) {
        (my $base = $name) =~ s/\Q$suffix\E$// or next;
        return $base if ($names->{$base} // '') eq 'histogram';
    }
    return $name;
}

1;

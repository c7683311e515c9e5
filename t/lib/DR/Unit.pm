package DR::Unit;

# Runs one of the C unit tests of the pure parts (built by "make unit"
# into $DR_BUILD_DIR/unit/, default build/unit/), which print TAP
# themselves.  A missing binary is a failure, never a skip: a suite that
# passes without running them proves nothing.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;

sub run {
    my ($name) = @_;

    my $root = File::Spec->rel2abs(dirname(__FILE__) . '/../../..');
    my $build = File::Spec->rel2abs($ENV{DR_BUILD_DIR} // 'build', $root);
    my $bin = File::Spec->catfile($build, 'unit', $name);

    $| = 1;

    unless (-f $bin && -x _) {
        print "1..1\nnot ok 1 - $bin missing\n";
        print "# build it in $root with: make unit\n";
        exit 1;
    }

    # the block form never goes through a shell, whatever the path holds
    exec { $bin } $bin
        or print "1..1\nnot ok 1 - cannot run $bin: $!\n";

    exit 1;
}

1;

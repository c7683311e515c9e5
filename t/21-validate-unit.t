#!/usr/bin/perl

# Runs the C unit tests of the input validation code
# (ngx_dr_module/ngx_dr_validate.c, t/unit/validate.c), which print TAP
# themselves.  The binary is built, not run from here: DR_BUILD_DIR
# (default "build", relative to the repository root) must hold
# unit/validate.  A missing binary is a failure, never a skip: a suite
# that passes without running the validation tests proves nothing.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use FindBin;

my $root = dirname($FindBin::RealBin);
my $build = File::Spec->rel2abs($ENV{DR_BUILD_DIR} // 'build', $root);
my $bin = File::Spec->catfile($build, 'unit', 'validate');

$| = 1;

unless (-f $bin && -x _) {
    print "1..1\n";
    print "not ok 1 - $bin missing\n";
    print "# build it in $root with: make unit\n";
    exit 1;
}

# the block form never goes through a shell, whatever the path holds
exec { $bin } $bin
    or print "1..1\nnot ok 1 - cannot run $bin: $!\n";

exit 1;

# The C unit tests of grounding against facts (ngx_dr_ground.c),
# in t/unit/ground.c; they print TAP themselves.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Unit;

DR::Unit::run('ground');

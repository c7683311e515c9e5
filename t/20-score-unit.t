# The C unit tests of the scoring of stored answers (ngx_dr_score.c),
# in t/unit/score.c; they print TAP themselves.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Unit;

DR::Unit::run('score');

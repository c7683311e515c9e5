# The C unit tests of the validation of input (ngx_dr_validate.c),
# in t/unit/validate.c; they print TAP themselves.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Unit;

DR::Unit::run('validate');

# The C unit tests of the token-bucket arithmetic (ngx_dr_bucket.c),
# in t/unit/bucket.c; they print TAP themselves.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Unit;

DR::Unit::run('bucket');

# The C unit tests of the provider codecs (ngx_dr_provider.c),
# in t/unit/provider.c; they print TAP themselves.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Unit;

DR::Unit::run('provider');

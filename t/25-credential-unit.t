# The C unit tests of the accounts' credentials (ngx_dr_credential.c):
# base64url, scrypt, HS256 tokens, e-mail addresses and passwords, in
# t/unit/credential.c; they print TAP themselves.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Unit;

DR::Unit::run('credential');

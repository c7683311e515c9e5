# Cluster mode keeps one row of limit_consumption per node and bucket.
# Nodes come and go (renamed, replaced), keys are dropped: the rows of a
# bucket that no node took from for a day are deleted by the sync, and
# only those.  A row of a bucket still in use on another node stays even
# when its own node has been quiet for a day: deleting it would make that
# node's count look new to the others when it comes back, and charge it
# again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = DR::Test->new(db => 1, no_start => 1, workers => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_limit_sync interval=200ms node=node-here;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth optional; dr_api; }
    }
EOF

my $dbh = $t->dbh;
$dbh->do(q{
    INSERT INTO limit_consumption (node, bucket, consumed, updated_at)
    VALUES ('node-gone', 'key:forgotten', 5, now() - interval '2 days'),
           ('node-gone', 'key:dropped', 9, now() - interval '25 hours'),
           ('node-gone', 'key:in-use', 7, now() - interval '2 days'),
           ('node-busy', 'key:in-use', 3, now()),
           ('node-busy', 'key:lately', 1, now() - interval '23 hours')});

$t->start;

# the sync runs every 100 ms
my $deadline = time + 10;
my $left;
while (time < $deadline) {
    $left = $dbh->selectcol_arrayref(q{
        SELECT node || ' ' || bucket FROM limit_consumption
         WHERE bucket LIKE 'key:%' ORDER BY 1});
    last if @$left < 5;
    sleep 0.1;
}

is_deeply($left, ['node-busy key:in-use', 'node-busy key:lately',
                  'node-gone key:in-use'],
    'the rows of buckets no node took from for a day are gone, the others '
    . 'stay');

# and the exchange itself goes on: what this node takes is published
my $key = $t->create_key(tier => 'free');
for (1 .. 3) {
    $t->get('/api/stats', headers => { 'X-API-Key' => $key });
}
$deadline = time + 10;
my $mine = 0;
while (time < $deadline && !$mine) {
    ($mine) = $dbh->selectrow_array(q{
        SELECT count(*) FROM limit_consumption WHERE node = 'node-here'});
    sleep 0.1;
}
ok($mine, 'this node publishes what its key took');
unlike($t->error_log, qr/\[error\]/, 'and the sync fails never');

$t->stop;

done_testing;

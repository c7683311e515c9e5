# The answers that come together end their jobs together: one statement
# and one transaction store many answers (rows of one transaction share
# its xmin), each still once, each job done in the transaction that
# stores its answer.  The hot statements are prepared on the pool's
# connections: killing every backend of the node mid-crawl loses nothing,
# since a new connection prepares them again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep time);

# every call answered after the same delay: the jobs of a claim end
# together
my $sim = DR::Sim->start(latency_ms => 200, seed => 7);

my $t = DR::Test->new(db => 1, no_start => 1,
                      http => $sim->crawler_conf(rpm => 6000));
$t->dbh->do(q{INSERT INTO domains (domain, category)
              SELECT 'batch' || i || '.example', 'Tech'
                FROM generate_series(1, 10) i});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($admin, @_) }

sub wait_run {
    my ($run, $limit) = @_;
    my $r;
    DR::Test::wait_for(sub {
        $r = admin('GET', "/admin/runs/$run");
        ($r->{json}{status} // '') eq 'done';
    }, $limit, 0.25);
    return $r->{json} // {};
}

my $dbh = $t->dbh;

my $r = admin('POST', '/admin/runs', '{}');
is($r->{status}, 202, 'a run of everything is queued');
my $jobs = $r->{json}{jobs};
is($jobs, 10 * 8 * 3, '240 jobs');
my $run = $r->{json}{run_id};

# mid-crawl, every connection of the node to the database is killed
DR::Test::wait_for(sub {
    my ($n) = $dbh->selectrow_array(
        'SELECT count(*) FROM responses WHERE run_id = ?', undef, $run);
    $n > 0;
}, 120, 0.05);
my ($killed) = $dbh->selectrow_array(q{
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND backend_type = 'client backend'});
ok($killed > 0, "the node's connections are killed mid-crawl ($killed)");

my $p = wait_run($run, 300);
is($p->{status}, 'done', 'the run ends') or diag(explain($p));
is($p->{done}, $jobs, 'every job done');

my ($n, $keys, $txns, $biggest) = $dbh->selectrow_array(q{
    SELECT count(*), count(DISTINCT (domain_id, model_id, prompt_id)),
           count(DISTINCT xmin::text),
           (SELECT max(c) FROM (SELECT count(*) AS c FROM responses
             WHERE run_id = $1 GROUP BY xmin::text) x)
      FROM responses WHERE run_id = $1}, undef, $run);
is($n, $jobs, 'one answer stored per job');
is($keys, $jobs, 'no answer stored twice');
ok($txns < $n, "the answers were stored in fewer transactions ($txns) "
    . "than answers ($n)");
ok($biggest > 1, "one transaction stored $biggest answers");

my ($orphans) = $dbh->selectrow_array(q{
    SELECT count(*) FROM jobs j WHERE j.run_id = ?
       AND (j.status = 'done') <> EXISTS (SELECT 1 FROM responses r
            WHERE r.job_id = j.id)}, undef, $run);
is($orphans, 0, 'a job is done exactly when its answer is stored');

my ($same) = $dbh->selectrow_array(q{
    SELECT count(*) FROM responses r JOIN jobs j ON j.id = r.job_id
     WHERE r.run_id = ? AND r.xmin::text = j.xmin::text}, undef, $run);
is($same, $jobs, 'each answer is in the transaction that ended its job');

my ($scored) = $dbh->selectrow_array(
    'SELECT count(*) FROM domain_scores WHERE run_id = ?', undef, $run);
DR::Test::wait_for(sub {
    ($scored) = $dbh->selectrow_array(
        'SELECT count(*) FROM domain_scores WHERE run_id = ?', undef, $run);
    $scored == 10;
}, 60, 0.25);
is($scored, 10, 'every domain scored after its last job');

my ($in, $sin) = $dbh->selectrow_array(q{
    SELECT input_tokens, (SELECT sum(input_tokens) FROM responses
                          WHERE run_id = runs.id)
      FROM runs WHERE id = ?}, undef, $run);
is($in, $sin, "the run's totals are its answers' sums");

$t->stop;

done_testing;

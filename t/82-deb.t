# The Debian package: "make deb" builds libnginx-mod-http-dr (again only
# when a file it is made of changed), lintian finds nothing, the package
# depends on the nginx ABI it was built against, holds the module, its
# load_module snippet enabled the Debian way, the migrations, the tools,
# the examples and docs; extracted with dpkg-deb -x, its module passes
# nginx -t with its own production.conf adapted to local paths, answers
# requests, and its migrations make a database from nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::ExampleConf;
use DR::Test;
use File::Temp qw(tempdir);
use Test::More;

my $top = $DR::Test::TOP;
my $build = $ENV{DR_BUILD_DIR} // "$top/build";

my $out = `make -s -C $top deb BUILD=$build 2>&1`;
is($?, 0, 'make deb succeeds') or diag($out);

my ($deb) = grep { !/-dbgsym_/ }
    glob "$build/deb/libnginx-mod-http-dr_*.deb";
ok($deb && -f $deb, 'a package libnginx-mod-http-dr') or BAIL_OUT('no .deb');

# lintian, on the package as it is now
$out = `lintian --fail-on error,warning $deb 2>&1`;
is($?, 0, 'lintian passes the package');
my @tags = grep { /^[EW]: / } split /\n/, $out;
ok(!@tags, 'with no error and no warning') or diag(join "\n", @tags);

# the control fields: the nginx ABI computed by dh_nginx
my $control = `dpkg-deb -f $deb`;
like($control, qr/^Package: libnginx-mod-http-dr$/m, 'its name');
open my $fh, '<', '/usr/share/nginx/src/debian/libnginx-mod.abisubstvars'
    or die "nginx-dev's ABI file: $!";
my ($abi) = map { /^nginx:abi=(\S+)/ ? $1 : () } <$fh>;
close $fh;
ok($abi, "nginx-dev names its ABI ($abi)");
like($control, qr/^Depends:.*\b\Q$abi\E\b/m,
    'the package depends on that ABI');
my $provides = `dpkg-query -W -f '\${Provides}' nginx nginx-light nginx-core \
    nginx-full nginx-extras 2>/dev/null`;
like($provides, qr/\b\Q$abi\E\b/, 'which the installed nginx provides');
like($control, qr/^Depends:.*\b$_\b/m, "and on $_, which the module links")
    for qw(libpq5 libcurl4 libjansson4 libssl3);

# what it holds
my $x = tempdir('dr-deb-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{DR_KEEP});
chmod 0755, $x;
system('dpkg-deb', '-x', $deb, $x) == 0 or die 'dpkg-deb -x';
system('dpkg-deb', '-e', $deb, "$x/DEBIAN") == 0 or die 'dpkg-deb -e';

my $so = "$x/usr/lib/nginx/modules/ngx_http_dr_module.so";
ok(-f $so, 'the module in /usr/lib/nginx/modules/');
for my $f (qw(usr/share/domain-runner/sql/001_schema.sql
              usr/share/domain-runner/sql/migrate.sh
              usr/sbin/dr-key usr/sbin/dr-migrate
              usr/share/man/man8/dr-key.8.gz
              usr/share/doc/libnginx-mod-http-dr/copyright
              usr/share/doc/libnginx-mod-http-dr/examples/production.conf
              usr/share/doc/libnginx-mod-http-dr/examples/multi-node.conf
              usr/share/doc/libnginx-mod-http-dr/examples/prometheus/domain-runner.rules.yml
              usr/share/doc/libnginx-mod-http-dr/examples/grafana/domain-runner.json))
{
    ok(-f "$x/$f", "/$f");
}
ok(-x "$x/usr/sbin/$_", "$_ is executable") for qw(dr-key dr-migrate);
ok(scalar(() = glob "$x/usr/share/doc/libnginx-mod-http-dr/$_.md*"),
    "the docs: $_.md (compressed when large, as policy asks)")
    for qw(README operations scoring);
my @sql = glob "$top/sql/[0-9]*.sql";
is(scalar(() = glob "$x/usr/share/domain-runner/sql/[0-9]*.sql"),
    scalar @sql, 'every migration');

my $snippet_file = "$x/usr/share/nginx/modules-available/mod-http-dr.conf";
open $fh, '<', $snippet_file or die "$snippet_file: $!";
my $snippet = do { local $/; <$fh> };
close $fh;
is($snippet, "load_module modules/ngx_http_dr_module.so;\n",
    'the load_module snippet in /usr/share/nginx/modules-available/');

open $fh, '<', "$x/DEBIAN/postinst" or die;
my $postinst = do { local $/; <$fh> };
close $fh;
like($postinst, qr/mod-http-dr\.conf:50-mod-http-dr\.conf/,
    'postinst enables it as /etc/nginx/modules-enabled/50-mod-http-dr.conf');
like($postinst, qr{ln -sf /usr/share/nginx/modules-available/},
    'with a link, as the other libnginx-mod packages do');

# its module and its production.conf, adapted to local paths
(my $local = $snippet) =~ s{modules/}{$x/usr/lib/nginx/modules/};
my $conf = DR::ExampleConf->new(
    "$x/usr/share/doc/libnginx-mod-http-dr/examples/production.conf",
    snippet => $local);
my ($rc, $test) = $conf->test;
is($rc, 0, 'nginx -t passes with the package\'s module and production.conf')
    or diag($test);
like($conf->dump, qr{load_module \Q$x\E/usr/lib/nginx/modules/},
    'the module loaded is the package\'s');

# the package's module serves
{
    local $DR::Test::CFG{module} = $so;
    my $t = DR::Test->new(http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF
    my $r = $t->get('/healthz');
    is($r->{status}, 200, 'the package\'s module answers /healthz');
    is($r->{json}{status}, 'alive', 'alive');
    $t->stop;
}

# its migrations make the schema in an empty database
my $c = DR::Test::Cluster->shared;
my $db = "dr_deb_$$";
$c->psql('postgres', '-c', "CREATE DATABASE $db TEMPLATE template0");
my $migrate = "$x/usr/share/domain-runner/sql/migrate.sh -h $c->{socket} "
    . "-p $c->{port} -U $c->{user} -d $db";
is(system("$migrate >/dev/null"), 0, 'the package\'s migrate.sh applies');
is(system("$migrate >/dev/null"), 0, 'and again');
my $dbh = $c->dbh($db);
my ($n) = $dbh->selectrow_array('SELECT count(*) FROM schema_migrations');
is($n, scalar @sql, 'each migration once');
my ($tables) = $dbh->selectrow_array(q{SELECT count(*) FROM pg_tables
    WHERE tablename IN ('domains', 'jobs', 'api_keys', 'responses')});
is($tables, 4, 'the tables are made');
$dbh->disconnect;
$c->psql('postgres', '-c', "DROP DATABASE $db WITH (FORCE)");

done_testing;

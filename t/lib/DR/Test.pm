package DR::Test;

# The test harness: each test file starts its own nginx, from a snippet of
# configuration, on a free port, with its own database cloned from the
# template the Makefile builds.  Stopping it fails the file when the error
# log holds [alert], [crit] or [emerg], shutdown included.  Under
# DR_VALGRIND=1 nginx runs under valgrind and any memory error fails too.
#
# No assertion here depends on how fast the machine is: the harness waits
# for what it expects (a port, a log line, a state) with deadlines far
# longer than a healthy machine needs, and the tests do the same through
# wait_for().  Every port it listens on lies below Linux's ephemeral range
# (32768-60999), where an outgoing connection could hold it.
# Under DR_ASAN=1 (make test-asan) the module is the one built with
# AddressSanitizer and UBSan, nginx runs with their runtime preloaded
# (DR_ASAN_RUNTIME), and any report of theirs fails as an [alert] would.

use strict;
use warnings;

use Cwd qw(abs_path);
use DBI;
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our $TOP = abs_path(dirname(__FILE__) . '/../../..');

our %CFG = (
    module   => $ENV{DR_MODULE} // "$TOP/build/ngx_http_dr_module.so",
    nginx    => $ENV{DR_NGINX} // '/usr/sbin/nginx',
    pg_bin   => $ENV{DR_PG_BIN} // '/usr/lib/postgresql/15/bin',
    socket   => $ENV{DR_PG_SOCKET} // '/var/lib/domain-runner/socket',
    port     => $ENV{DR_PG_PORT} // 25432,
    user     => $ENV{DR_PG_USER} // 'domain_runner',
    template => $ENV{DR_PG_TEMPLATE} // 'dr_template',
);

my @LIVE;    # instances to clean up if a test dies

sub new {
    my ($class, %args) = @_;

    my $self = bless {
        owner   => $$,    # forked children leave everything alone
        workers => 2,
        http    => '',
        main    => '',
        events  => 'worker_connections 1024;',
        %args,
    }, $class;

    $self->{dir} = tempdir('dr-test-XXXXXX', TMPDIR => 1,
        CLEANUP => !$ENV{DR_KEEP});

    # workers run as nobody: they must reach the temporary paths, and
    # write the sanitizers' reports
    chmod 0711, $self->{dir};
    for my $sub ('tmp', 'sanitizer') {
        mkdir "$self->{dir}/$sub";
        chown scalar(getpwnam('nobody')), -1, "$self->{dir}/$sub";
    }

    $self->{port} = free_port();

    # the server secret of API keys, readable by its owner only
    $self->{secret} = "$self->{dir}/key_secret";
    open my $sfh, '>', $self->{secret} or die "key_secret: $!";
    print $sfh join('', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 48), "\n";
    close $sfh;
    chmod 0600, $self->{secret};

    if ($self->{db}) {
        $self->{cluster} //= DR::Test::Cluster->shared;
        $self->{dbname} = $self->{cluster}->create_db;
    }

    push @LIVE, $self;

    $self->write_conf;
    $self->start unless $self->{no_start};

    return $self;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }

sub conninfo {
    my ($self) = @_;
    my $c = $self->{cluster};
    return "host=$c->{socket} port=$c->{port} user=$c->{user} "
        . "dbname=$self->{dbname}";
}

sub expand {
    my ($self, $text) = @_;
    my $pg = $self->{dbname} ? $self->conninfo : '';
    $text =~ s/%%PORT%%/$self->{port}/g;
    $text =~ s/%%PG%%/$pg/g;
    $text =~ s/%%DBNAME%%/$self->{dbname} \/\/ ''/ge;
    $text =~ s/%%DIR%%/$self->{dir}/g;
    $text =~ s/%%SECRET%%/$self->{secret}/g;
    return $text;
}

sub write_conf {
    my ($self, $http) = @_;

    $self->{http} = $http if defined $http;

    my $d = $self->{dir};

    # workers keep only the environment "env" names: UBSan reads its
    # options when it first reports, in a worker
    my $san = $ENV{DR_ASAN} ? "env ASAN_OPTIONS;\nenv UBSAN_OPTIONS;" : '';

    my $conf = <<"EOF";
load_module $CFG{module};

worker_processes $self->{workers};
error_log $d/error.log info;
pid $d/nginx.pid;
$san
$self->{main}

events {
    $self->{events}
}

http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;

$self->{http}
}
EOF

    open my $fh, '>', "$d/nginx.conf" or die "nginx.conf: $!";
    print $fh $self->expand($conf);
    close $fh;
}

# nginx -t on the current configuration: (exit status, output)
sub test_conf {
    my ($self) = @_;
    local %ENV = (%ENV, $self->sanitizer_env);
    my $out = `$CFG{nginx} -t -p $self->{dir} -c $self->{dir}/nginx.conf 2>&1`;
    my $rc = $? >> 8;

    # a test that only runs nginx -t never stops an nginx: checked here
    if (my $reports = $self->sanitizer_reports($out)) {
        fail('nginx -t: AddressSanitizer and UBSan report nothing');
        diag($reports);
        unlink glob "$self->{dir}/sanitizer/*";
    }

    return ($rc, $out);
}

# what nginx runs with under DR_ASAN: the runtime first in the process,
# every report in a file of the test's directory, the first one fatal;
# nginx's own allocations are not the module's leaks.  Options already in
# the environment come last, and win.
sub sanitizer_env {
    my ($self) = @_;

    return () unless $ENV{DR_ASAN};

    my $runtime = $ENV{DR_ASAN_RUNTIME}
        or die "DR_ASAN needs DR_ASAN_RUNTIME, the path of libasan.so\n";
    my $log = "$self->{dir}/sanitizer";
    mkdir $log;

    return (
        LD_PRELOAD   => $runtime,
        ASAN_OPTIONS => "detect_leaks=0:halt_on_error=1:abort_on_error=0"
            . ":detect_stack_use_after_return=0:log_path=$log/asan"
            . (defined $ENV{ASAN_OPTIONS} ? ":$ENV{ASAN_OPTIONS}" : ''),
        UBSAN_OPTIONS => "halt_on_error=1:print_stacktrace=1"
            . ":log_path=$log/ubsan"
            . (defined $ENV{UBSAN_OPTIONS} ? ":$ENV{UBSAN_OPTIONS}" : ''),
    );
}

# starts nginx; when another process took the port between free_port()
# and nginx's bind, it tries again on another
sub start {
    my ($self) = @_;

    for my $try (1 .. 5) {
        return $self if $self->start_once;

        my $log = $self->error_log . $self->start_output;
        die "nginx did not start:\n$log" . $self->sanitizer_reports
            unless $log =~ /bind\(\) to \S+:$self->{port} failed .*in use/;

        diag("port $self->{port} was taken meanwhile; trying another");
        $self->{port} = free_port();
        $self->write_conf;
        truncate "$self->{dir}/error.log", 0;
    }

    die "nginx found no free port to listen on";
}

sub start_output {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/start.log" or return '';
    local $/;
    return <$fh> // '';
}

sub start_once {
    my ($self) = @_;

    my @cmd = ($CFG{nginx}, '-p', $self->{dir}, '-c', "$self->{dir}/nginx.conf");

    if ($ENV{DR_VALGRIND}) {
        unshift @cmd, 'valgrind', '-q', '--trace-children=yes',
            '--leak-check=no', '--num-callers=30', '--vgdb=no',
            "--log-file=$self->{dir}/valgrind.%p.log";
        push @cmd, '-g', 'daemon off;';
    }

    # the sanitizers' runtime and options, for nginx and its workers
    local %ENV = (%ENV, $self->sanitizer_env);

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$self->{dir}/start.log";
        exec @cmd or die "exec: $!";
    }

    if ($ENV{DR_VALGRIND}) {
        $self->{fg_pid} = $pid;

        # nginx under valgrind takes its time to listen, or exits
        my $exited;
        wait_for(sub {
            $exited = 1 if waitpid($pid, WNOHANG) == $pid;
            $exited || $self->listening;
        }, 120, 0.1);
        return 0 unless $self->listening;

        # and to start its workers: wait for them to answer
        wait_for(sub {
            HTTP::Tiny->new(timeout => 5)
                ->get("http://127.0.0.1:$self->{port}/")->{status} != 599;
        }, 120, 0.2);

    } else {
        # nginx listens before it daemonizes: once it returns, it does
        waitpid $pid, 0;
        return 0 if $? || !$self->wait_port(1, 30);
    }

    $self->{running} = 1;
    return 1;
}

sub master_pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/nginx.pid" or return;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

sub worker_pids {
    my ($self) = @_;
    my $master = $self->master_pid or return ();
    my @pids = split ' ', `pgrep -P $master`;
    return @pids;
}

sub signal {
    my ($self, $sig) = @_;
    my $pid = $self->master_pid or die 'no master pid';
    kill $sig, $pid;
}

# HUP, then wait until the old workers are gone
sub reload {
    my ($self) = @_;
    my @old = $self->worker_pids;
    $self->signal('HUP');
    wait_for(sub {
        my %now = map { $_ => 1 } $self->worker_pids;
        !grep { $now{$_} } @old;
    }, $ENV{DR_VALGRIND} ? 240 : 60, 0.05);
}

sub listening {
    my ($self) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Timeout => 5) ? 1 : 0;
}

# waits until the port is listened on ($up) or not, at most $timeout s
sub wait_port {
    my ($self, $up, $timeout) = @_;
    return wait_for(sub { $self->listening == ($up ? 1 : 0) }, $timeout,
        0.05) ? 1 : 0;
}

# graceful stop, then the error log verdict (one test)
sub stop {
    my ($self) = @_;

    return unless $self->{running};
    $self->{running} = 0;

    my $pid = $self->master_pid;
    kill 'QUIT', $pid if $pid;

    if (!$self->wait_exit($pid, 60)) {    # then the log is checked anyway
        kill 'KILL', $pid;
        fail('nginx stopped within the deadline');
    }

    $self->check_log;
}

# waits for the master to exit (reaping it when it is our child, under
# valgrind); the deadline stretches under valgrind
sub wait_exit {
    my ($self, $pid, $timeout) = @_;

    return 1 unless $pid;
    $timeout *= 8 if $ENV{DR_VALGRIND};

    my $deadline = time + $timeout;
    while (time < $deadline) {
        waitpid($self->{fg_pid}, WNOHANG) if $self->{fg_pid};
        return 1 if !alive($pid);
        sleep 0.05;
    }
    return 0;
}

# a process that exited but was not reaped yet counts as gone
sub alive {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    return $stat !~ /^\d+ \(.*\) Z/;
}

sub check_log {
    my ($self) = @_;

    # a test that kills a worker on purpose expects nginx's alert of it
    my $expected = $self->{expected_alert};
    my @bad = grep { /\[(alert|crit|emerg)\]/
                     && !($expected && /$expected/) }
        split /\n/, $self->error_log;
    ok(!@bad, 'no [alert], [crit] or [emerg] in the error log')
        or diag(join "\n", @bad);

    if ($ENV{DR_ASAN}) {
        my $reports = $self->sanitizer_reports;
        ok($reports eq '', 'AddressSanitizer and UBSan report nothing')
            or diag($reports);
    }

    return unless $ENV{DR_VALGRIND};

    my @errors;
    for my $log (glob "$self->{dir}/valgrind.*.log") {
        open my $fh, '<', $log or next;
        local $/;
        my $text = <$fh>;
        push @errors, $text if $text =~ /\S/;
    }
    ok(!@errors, 'valgrind reports no memory errors') or diag(@errors);
}

# every report the sanitizers wrote, one file per process, and any that
# reached the error log or the given output (stderr) instead: gcc's UBSan
# beside ASan writes to stderr whatever its log_path
sub sanitizer_reports {
    my ($self, $output) = @_;
    my $all = sanitizer_files($self);
    my $report = qr/runtime error:|(?:Address|Leak|UndefinedBehavior)Sanitizer/;
    my @stderr = grep { $_ =~ $report } split /\n/,
        $self->error_log . "\n" . ($output // '');
    $all .= join "\n", 'error.log:', @stderr, '' if @stderr;
    return $all;
}

# the reports in the sanitizer directory of an object with a {dir}: a
# test's nginx, or an example configuration (DR::ExampleConf)
sub sanitizer_files {
    my ($self) = @_;
    my $all = '';
    for my $log (sort glob "$self->{dir}/sanitizer/*") {
        open my $fh, '<', $log or next;
        local $/;
        my $text = <$fh> // '';
        $all .= "$log:\n$text" if $text =~ /\S/;
    }
    return $all;
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/error.log" or return '';
    local $/;
    return <$fh> // '';
}

# waits until the error log matches (for instance, the listener is up),
# at most $timeout seconds (30); with $from (a log_size() taken before),
# only what was written since counts
sub wait_log {
    my ($self, $re, $timeout, $from) = @_;
    return wait_for(sub { substr($self->error_log, $from // 0) =~ $re },
        $timeout // 30, 0.02);
}

sub log_size { length $_[0]->error_log }

# the error log lines written since the last call
sub new_log_lines {
    my ($self) = @_;
    my $log = $self->error_log;
    my $from = $self->{log_seen} // 0;
    $self->{log_seen} = length $log;
    return split /\n/, substr($log, $from);
}

# HTTP

sub http {
    my ($self, $method, $path, %opt) = @_;
    my $ua = HTTP::Tiny->new(timeout => $opt{timeout} // 30,
        keep_alive => 0);
    my $t0 = time;
    my $r = $ua->request($method, "http://127.0.0.1:$self->{port}$path",
        { headers => $opt{headers} // {},
          (defined $opt{body} ? (content => $opt{body}) : ()) });
    $r->{elapsed} = time - $t0;
    if (($r->{headers}{'content-type'} // '') =~ m{^application/json}) {
        $r->{json} = eval { decode_json($r->{content}) };
    }
    return $r;
}

sub get { my $self = shift; $self->http('GET', @_) }

# a request carrying an API key, with a body if one is given:
# $t->keyed($admin, 'POST', '/admin/runs', '{}')
sub keyed {
    my ($self, $key, $method, $path, $body) = @_;
    return $self->http($method, $path, timeout => 60,
        headers => { 'X-API-Key' => $key },
        defined $body ? (body => $body) : ());
}

# n requests on n connections at once; returns the status of each
sub parallel {
    my ($self, $n, $path, %opt) = @_;

    my (@socks, %buf);
    for (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{port}) or die "connect: $!";
        my $extra = join '', map { "$_: $opt{headers}{$_}\r\n" }
            keys %{$opt{headers} // {}};
        print $s "GET $path HTTP/1.1\r\nHost: test\r\n$extra"
            . "Connection: close\r\n\r\n";
        push @socks, $s;
    }

    $opt{before_read}->() if $opt{before_read};

    my $sel = IO::Select->new(@socks);
    my $deadline = time + ($opt{timeout} // 60);
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.5)) {
            my $got = sysread($s, my $chunk, 65536);
            if ($got) {
                $buf{$s} .= $chunk;
            } else {
                $sel->remove($s);
                close $s;
            }
        }
    }

    return map { ($buf{$_} // '') =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0 } @socks;
}

# the counters of a "stub_status" location: {active, reading, writing,
# waiting}; writing counts the requests nginx has read and not yet
# finished (this one included), in every worker
sub stub_status {
    my ($self, $path) = @_;
    my $r = $self->get($path);
    my %s;
    @s{qw(active)} = $r->{content} =~ /^Active connections: (\d+)/m;
    @s{qw(reading writing waiting)} = $r->{content}
        =~ /Reading: (\d+) Writing: (\d+) Waiting: (\d+)/;
    return \%s;
}

sub dbh {
    my ($self) = @_;
    return $self->{cluster}->dbh($self->{dbname});
}

# waits until a run of the queue is done, at most $limit seconds; its
# status at the end
sub wait_run {
    my ($self, $run, $limit) = @_;
    my $status = '';
    wait_for(sub {
        ($status) = $self->dbh->selectrow_array(
            'SELECT status FROM runs WHERE id = ?', undef, $run);
        ($status // '') eq 'done';
    }, $limit, 0.25);
    return $status;
}

# a new API key, made by tools/dr-key as an operator would
sub create_key {
    my ($self, %opt) = @_;
    my $c = $self->{cluster};
    my @args = ('--secret-file', $self->{secret},
        '--tier', $opt{tier} // 'free', '--name', $opt{name} // 'test',
        '--host', $c->{socket}, '--port', $c->{port}, '--user', $c->{user},
        '--dbname', $self->{dbname});
    push @args, '--expires', $opt{expires} if $opt{expires};
    open my $fh, '-|', "$TOP/tools/dr-key", @args or die "dr-key: $!";
    my $key = <$fh>;
    close $fh or die "dr-key failed";
    chomp $key;
    return $key;
}

sub DESTROY {
    my ($self) = @_;
    $self->kill_all if $self->{running} && $self->{owner} == $$;
}

sub kill_all {
    my ($self) = @_;
    my $pid = $self->master_pid;
    kill 'KILL', $self->worker_pids, $pid if $pid;
    $self->{running} = 0;
}

END {
    for my $t (grep { $_->{owner} == $$ } @LIVE) {
        $t->kill_all if $t->{running};
        $t->{cluster}->drop_db($t->{dbname})
            if $t->{dbname} && $t->{cluster} && !$t->{borrowed_db};
    }
}

# Polls $check every $every seconds (0.1) until it returns true or
# $timeout seconds (30) have passed; returns its last result.  Tests wait
# for what they expect with it, and give their deadline for a broken
# build, not for a slow machine.
sub wait_for {
    my ($check, $timeout, $every) = @_;
    my $deadline = time + ($timeout // 30);
    for (;;) {
        my $ok = $check->();
        return $ok if $ok || time >= $deadline;
        sleep($every // 0.1);
    }
}

# A port nothing listens on now, in 10000-29999: below Linux's ephemeral
# range (32768-60999), where the source port of an outgoing connection
# could hold it, and clear of the shared cluster's port.  Another process
# may still take it before it is bound: start() tries another then.
sub free_port {
    for (1 .. 200) {
        my $port = 10000 + int(rand(20000));
        next if $port == $CFG{port};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $port, Listen => 1, ReuseAddr => 1) or next;
        close $s;
        return $port;
    }
    die 'no free port';
}


package DR::Test::Cluster;

# A PostgreSQL cluster: the shared one of the Makefile, or a private one a
# test may stop and start at will.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $SHARED;
my @PRIVATE;

sub shared {
    return $SHARED //= bless {
        socket   => $CFG{socket},
        port     => $CFG{port},
        user     => $CFG{user},
        template => $CFG{template},
    }, __PACKAGE__;
}

# initdb of a new cluster as the postgres user, migrated, running
sub private {
    my ($class) = @_;

    my $dir = tempdir('dr-pg-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $dir;
    system('chown', 'postgres:postgres', $dir) == 0 or die 'chown';

    my $self = bless {
        owner    => $$,
        dir      => $dir,
        socket   => $dir,
        port     => DR::Test::free_port(),
        user     => $CFG{user},
        template => 'template1',
        private  => 1,
    }, $class;
    push @PRIVATE, $self;

    $self->as_postgres("$CFG{pg_bin}/initdb -D $dir/data -A trust -E UTF8 "
        . "--locale=C.UTF-8 >/dev/null");

    # another process may take the port before PostgreSQL binds it
    for my $try (1 .. 5) {
        last if eval { $self->start; 1 };
        die $@ if $try == 5 || !$self->port_taken;
        $self->{port} = DR::Test::free_port();
    }
    $self->as_postgres("$CFG{pg_bin}/psql -X -q -h $dir -p $self->{port} "
        . "-d postgres -c 'CREATE ROLE $self->{user} LOGIN CREATEDB'");

    return $self;
}

# a streaming standby of this cluster: pg_basebackup into a new
# directory, started on its own port, replaying what this one writes
sub standby {
    my ($self) = @_;

    my $dir = tempdir('dr-pg-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $dir;
    system('chown', 'postgres:postgres', $dir) == 0 or die 'chown';

    my $s = bless {
        owner    => $$,
        dir      => $dir,
        socket   => $dir,
        port     => DR::Test::free_port(),
        user     => $self->{user},
        template => 'template1',
        private  => 1,
        primary  => $self,
    }, ref $self;
    push @PRIVATE, $s;

    $self->as_postgres("$CFG{pg_bin}/pg_basebackup -D $dir/data "
        . "-h $self->{socket} -p $self->{port} -U postgres -X stream -R "
        . "-c fast");
    $s->start;

    return $s;
}

# one value of a query run as the superuser
sub super {
    my ($self, $sql) = @_;
    open my $fh, '-|', 'runuser', '-u', 'postgres', '--',
        "$CFG{pg_bin}/psql", '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1',
        '-h', $self->{socket}, '-p', $self->{port}, '-d', 'postgres',
        '-c', $sql or die "psql: $!";
    my $out = do { local $/; <$fh> } // '';
    close $fh or die "as postgres: $sql failed";
    chomp $out;
    return $out;
}

# a standby's replay, paused and resumed (what is paused stays paused
# until resumed)
sub replay_pause {
    my ($self) = @_;
    $self->super('SELECT pg_wal_replay_pause()');
    for (1 .. 100) {
        return 1 if $self->super('SELECT pg_get_wal_replay_pause_state()')
            eq 'paused';
        Time::HiRes::sleep(0.05);
    }
    die 'the standby does not pause';
}

sub replay_resume { $_[0]->super('SELECT pg_wal_replay_resume()') }

# waits until a standby has replayed all its primary has written
sub catch_up {
    my ($self, $timeout) = @_;
    my $lsn = $self->{primary}->super('SELECT pg_current_wal_lsn()');
    my $deadline = Time::HiRes::time() + ($timeout // 10);
    while (Time::HiRes::time() < $deadline) {
        return 1 if $self->super("SELECT pg_last_wal_replay_lsn() >= "
            . "'$lsn'::pg_lsn") eq 't';
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

sub as_postgres {
    my ($self, $cmd) = @_;
    system('runuser', '-u', 'postgres', '--', 'sh', '-c', $cmd) == 0
        or die "as postgres: $cmd failed";
}

sub start {
    my ($self) = @_;
    $self->as_postgres("$CFG{pg_bin}/pg_ctl -D $self->{dir}/data -w "
        . "-l $self->{dir}/log -o '-p $self->{port} -k $self->{dir} "
        . "-c listen_addresses=127.0.0.1' start >/dev/null");
}

# the log of a start that failed says the port was in use
sub port_taken {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/log" or return 0;
    local $/;
    return (<$fh> // '') =~ /could not bind .*Address already in use/;
}

sub stop {
    my ($self) = @_;
    $self->as_postgres("$CFG{pg_bin}/pg_ctl -D $self->{dir}/data -w "
        . "-m fast stop >/dev/null");
}

sub psql {
    my ($self, $db, @args) = @_;
    my @cmd = ("$CFG{pg_bin}/psql", '-X', '-q', '-v', 'ON_ERROR_STOP=1',
        '-h', $self->{socket}, '-p', $self->{port}, '-U', $self->{user},
        '-d', $db, @args);
    system(@cmd) == 0 or die "psql @args failed";
}

my $DB_SEQ = 0;

sub create_db {
    my ($self) = @_;
    my $name = sprintf 'dr_t_%d_%d', $$, $DB_SEQ++;
    $self->psql('postgres', '-c',
        "CREATE DATABASE $name TEMPLATE $self->{template}");
    if ($self->{private}) {
        system("$DR::Test::TOP/sql/migrate.sh -h $self->{socket} "
            . "-p $self->{port} -U $self->{user} -d $name >/dev/null") == 0
            or die 'migrate';
    }
    return $name;
}

sub drop_db {
    my ($self, $name) = @_;
    return if $self->{private};    # removed whole at the end
    eval {
        $self->psql('postgres', '-c',
            "DROP DATABASE IF EXISTS $name WITH (FORCE)");
    };
}

sub dbh {
    my ($self, $db) = @_;
    return DBI->connect("dbi:Pg:dbname=$db;host=$self->{socket};"
        . "port=$self->{port}", $self->{user}, '',
        { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
}

# backends connected from nginx workers, by application_name
sub nginx_backends {
    my ($self, $db) = @_;
    my $dbh = $self->dbh('postgres');
    my ($n) = $dbh->selectrow_array(
        q{SELECT count(*) FROM pg_stat_activity
           WHERE datname = ? AND application_name LIKE 'domain-runner %'},
        undef, $db);
    $dbh->disconnect;
    return $n;
}

END {
    for my $c (grep { $_->{owner} == $$ } @PRIVATE) {
        eval { $c->stop };
        File::Path::remove_tree($c->{dir});
    }
}

1;

package DR::Upstream;

# Starts the plain application of t/sim/upstream behind a test's node:
#
#   my $up = DR::Upstream->start(dir => $t->dir);
#   $up->port;          # where it listens
#   $up->seen;          # every request it received: [{method, path, headers}]
#   $up->count;         # how many
#   $up->stop;          # also on DESTROY

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use JSON::PP;
use Time::HiRes qw(sleep);

use DR::Test;

my $SCRIPT = abs_path(dirname(__FILE__) . '/../../sim/upstream');

sub start {
    my ($class, %o) = @_;
    my $log = "$o{dir}/upstream.log";
    unlink $log;

    # below Linux's ephemeral range, as every listener of the suite
    my $port = DR::Test::free_port();

    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        open STDOUT, '>&', $w or die;
        exec $^X, $SCRIPT, '--log', $log, '--port', $port,
            '--poll-ms', $o{poll_ms} // 1500;
        die "exec: $!";
    }
    close $w;
    my $line = <$r>;
    close $r;
    ($line // '') =~ /listening on (\d+)/
        or die "the upstream did not start";

    return bless { pid => $pid, port => $port, log => $log, owner => $$ },
        $class;
}

sub port { $_[0]{port} }

sub seen {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return [];
    return [map { decode_json($_) } grep { /\S/ } <$fh>];
}

sub count { scalar @{$_[0]->seen} }

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $self->{owner} == $$;
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;

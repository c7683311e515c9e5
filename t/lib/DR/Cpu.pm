package DR::Cpu;

# CPU time of processes, for the benchmarks: what a request or a call
# costs, whoever spends it.

use strict;
use warnings;

use Exporter qw(import);
our @EXPORT_OK = qw(cpu_seconds pg_pids);

my $TICKS = `getconf CLK_TCK` + 0 || 100;

# user and system time of the processes, summed, in seconds (those that
# have exited count nothing)
sub cpu_seconds {
    my $sum = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my @f = split ' ', (<$fh> =~ s/^.*\) //r);
        $sum += ($f[11] + $f[12]) / $TICKS;
    }
    return $sum;
}

# the processes of the test PostgreSQL cluster alone (the machine may run
# others): its postmaster and every process it started
sub pg_pids {
    my $pm;
    if (open my $fh, '<', "$ENV{DR_PG_SOCKET}/../pg/postmaster.pid") {
        ($pm) = <$fh> =~ /^(\d+)/;
    }
    return split ' ', `pgrep -u postgres postgres` unless $pm;
    return ($pm, split ' ', `pgrep -P $pm`);
}

1;

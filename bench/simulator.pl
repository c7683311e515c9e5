#!/usr/bin/perl
# The simulator benchmark: how many of 2,000 requests sent at once the
# provider simulator (t/sim/provider-sim) holds open at the same moment,
# by one process and by two, when each answer takes 1, 3 or 5 s.  The
# test suite (t/30-simulator.t) asserts only that every request is
# answered and none is left in flight; how many are held at once is this
# machine's speed, measured here.
#
# The client is the suite's: Mojo::UserAgent in one Perl process, all
# requests started at once.  Measured in the same run, the reference:
# the rate at which this client gets answers from a simulator answering
# at once (latency 0), how fast the two exchange requests on this
# machine; the held at once follow it more than the latency.
#
# Writes bench/simulator.md.
#
#   perl bench/simulator.pl [requests, default 2000]

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DR::Sim;
use JSON::PP;
use Mojo::IOLoop;
use Mojo::Reactor;
use Mojo::UserAgent;
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);

my $n = shift // 2000;
my $load = (split ' ', `cat /proc/loadavg`)[0];
my $reactor = Mojo::Reactor->detect;

# $n requests started at once; (answered 200, wall time, most in flight,
# in flight after)
sub burst {
    my (%o) = @_;
    my $sim = DR::Sim->start(%o);
    my $ua = Mojo::UserAgent->new(connect_timeout => 120,
        request_timeout => 300, inactivity_timeout => 300);
    my $url = $sim->url . '/openai/v1/chat/completions';
    my @req = map { [{ authorization => 'Bearer sk-bench-key-' . ($_ % 10)
            . 'xyzw', 'content-type' => 'application/json' },
        encode_json({ model => 'gpt-4o-mini', messages => [{ role => 'user',
            content => "What is load$_.example? Describe the business "
                . 'behind it.' }] })] } 1 .. $n;
    my ($done, $ok) = (0, 0);
    my $t0 = time;
    for my $q (@req) {
        $ua->post($url => $q->[0] => $q->[1] => sub {
            $ok++ if ($_[1]->res->code // 0) == 200;
            Mojo::IOLoop->stop if ++$done == $n;
        });
    }
    my $guard = Mojo::IOLoop->timer(600 => sub { Mojo::IOLoop->stop });
    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($guard);
    my $el = time - $t0;
    my $st;
    for (1 .. 600) {
        $st = $sim->stats(recent => 0)->{totals};
        last if $st->{in_flight} == 0;
        sleep 0.1;
    }
    $sim->stop;
    return { ok => $ok, el => $el, max => $st->{max_in_flight},
        left => $st->{in_flight} };
}

# the reference: answers a second, no latency
my $ref = burst(latency_ms => 0);
my $ref_rps = $ref->{ok} / $ref->{el};

my @rows;
for my $case ([1, 1000], [1, 3000], [2, 1000], [2, 5000]) {
    my ($workers, $latency) = @$case;
    my $r = burst(latency_ms => $latency,
        $workers > 1 ? (workers => $workers) : ());
    push @rows, sprintf '| %d | %d ms | %d of %d | %d | **%d** (%.0f%%) '
        . '| %.2f s |', $workers, $latency, $r->{ok}, $n, $r->{left},
        $r->{max}, 100 * $r->{max} / $n, $r->{el};
    printf "simulator: %d process(es), %d ms: %d of %d held at once, "
        . "%.2f s\n", $workers, $latency, $r->{max}, $n, $r->{el};
}

my $cpus = `nproc` + 0;
my $when = strftime('%Y-%m-%d %H:%M UTC', gmtime);
open my $out, '>', "$FindBin::Bin/simulator.md"
    or die "bench/simulator.md: $!";
printf $out <<'MD',
# Simulator benchmark

`make bench` (bench/simulator.pl), %s, %d CPUs shared by the client
and the simulator (load average %s at the start). %d requests sent at
once by one Mojo::UserAgent client (the one of t/30-simulator.t), each
answered after the latency (+-10%%); "held at once" is the simulator's
own most in flight
(`max_in_flight` of `GET /_sim/stats`; over workers, of all of them at
one moment).

Reference, in the same run: at latency 0 the client got %d answers
(of %d) in %.2f s, **%.0f answers/s**: how fast this client and one
simulator process exchange requests on this machine.

| processes | latency | answered 200 | left in flight | held at once | wall time |
|---|---|---|---|---|---|
MD
    $when, $cpus, $load, $n, $ref->{ok}, $n, $ref->{el}, $ref_rps;
print $out "$_\n" for @rows;
print $out <<'MD';

When the client delivers requests more slowly than the latency lets
them go, the first are answered before the last arrive, and fewer than
all are held at once: the count follows the client's rate, not the
simulator's capacity. A longer latency gives the client the time to
deliver them all. The suite's test asserts what does not depend on this:
every request answered once, and nothing left in flight.
MD
printf $out "\nEvent loop of the client and the simulator: %s. %s\n",
    $reactor, $reactor =~ /EV/
    ? "libev (Debian's libev-perl, installed by make) waits on epoll for\n"
      . 'the connections that are ready, so thousands open cost little more '
      . "than their\nrequests."
    : "Mojo's Poll reactor (libev-perl is not installed) looks at every\n"
      . 'open connection on each pass, so each is served more slowly the '
      . "more are open:\nthousands at once cost far more than their number.";
close $out;
print "wrote bench/simulator.md\n";

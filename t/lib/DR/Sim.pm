package DR::Sim;

# Starts the provider simulator (t/sim/provider-sim) for a test:
#
#   my $sim = DR::Sim->start(latency_ms => 50, rpm => 60, seed => 7,
#                            faults => '500=0.1', forget => ['example.com']);
#   DR::Sim->start(tpm => 40000, tpm_provider => { anthropic => 20000 });
#   DR::Sim->start(latency_ms => 300, workers => 2);   # no limit, no fault
#   DR::Sim->start(know_all => 1);   # every model knows every domain alike
#   DR::Sim->start(drift => 0);      # the knowledge model, no drift
#   $sim->url;                  # http://127.0.0.1:NNNN
#   $sim->base_url('openai');   # what a provider's base URL becomes
#   $sim->providers_conf(rpm => 600);  # dr_provider lines of all eight
#   $sim->crawler_conf(rpm => 600);    # the http block of a crawling node
#   $sim->stats;                # decoded GET /_sim/stats
#   $sim->over_limit;           # total over-limit requests (must stay 0)
#   $sim->over_limit_tokens;    # requests whose tokens did not fit (same)
#   $sim->reset;                # POST /_sim/reset (counters)
#   $sim->configure(faults => '429=1');   # POST /_sim/config
#   $sim->stop;                 # SIGTERM, wait; also done on DESTROY / END
#
# The simulator picks a free port itself (--port 0, below Linux's ephemeral
# range) and announces it on the first line of its stdout.  Only the
# process that started it stops it, so a forked child exiting leaves it
# alone.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use HTTP::Tiny;
use IO::Select;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

our $SCRIPT = $ENV{DR_SIM} // abs_path(dirname(__FILE__) . '/../../sim/provider-sim');

my @LIVE;

# what each provider's real base URL becomes against the simulator
my %BASE = (
    openai     => '/openai/v1',      # https://api.openai.com/v1
    anthropic  => '/anthropic',      # https://api.anthropic.com
    google     => '/google',         # https://generativelanguage.googleapis.com
    mistral    => '/mistral/v1',     # https://api.mistral.ai/v1
    deepseek   => '/deepseek',       # https://api.deepseek.com
    together   => '/together/v1',    # https://api.together.xyz/v1
    xai        => '/xai/v1',         # https://api.x.ai/v1
    perplexity => '/perplexity',     # https://api.perplexity.ai
);

my %OPT = (
    latency_ms => '--latency-ms', rpm => '--rpm', window_s => '--window-s',
    seed => '--seed', faults => '--faults', faults_file => '--faults-file',
    forget_file => '--forget-file', forget_rate => '--forget-rate',
    keys_file => '--keys-file', state_file => '--state-file',
    pid_file => '--pid-file', domains_file => '--domains-file',
    timeout_hold_s => '--timeout-hold-s', max_clients => '--max-clients',
    tpm => '--tpm', workers => '--workers', drift => '--drift',
);

sub start {
    my ($class, %o) = @_;
    my @args = ('--port', 0);
    for my $k (sort keys %OPT) {
        push @args, $OPT{$k}, $o{$k} if defined $o{$k};
    }
    if (defined $o{forget}) {
        push @args, '--forget',
            ref $o{forget} ? join(',', @{ $o{forget} }) : $o{forget};
    }
    if (defined $o{models}) {
        push @args, '--models',
            ref $o{models} ? join(',', @{ $o{models} }) : $o{models};
    }
    for my $k (qw(rpm_provider tpm_provider)) {
        my $v = $o{$k} // next;
        push @args, '--' . ($k =~ tr/_/-/r), ref $v
            ? join(',', map { "$_=$v->{$_}" } sort keys %$v) : $v;
    }
    push @args, '--spec-limits' if $o{spec_limits};
    push @args, '--know-all' if $o{know_all};
    push @args, '--verbose' if $o{verbose};
    push @args, @{ $o{args} } if $o{args};

    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        open STDOUT, '>&', $w or die "dup: $!";
        if (defined $o{stderr}) {
            open STDERR, '>>', $o{stderr} or die "$o{stderr}: $!";
        }
        exec $^X, $SCRIPT, @args or die "exec $SCRIPT: $!";
    }
    close $w;

    my $self = bless { pid => $pid, owner => $$, out => $r, opts => \%o,
        args => \@args }, $class;
    push @LIVE, $self;
    weaken($LIVE[-1]);    # DESTROY still runs when the test drops it

    my $sel = IO::Select->new($r);
    my $line = '';
    my $deadline = time + ($o{start_timeout} // 60);
    while ($line !~ /\n/) {
        my $left = $deadline - time;
        die "provider-sim did not announce its port within the timeout\n"
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $r, $line, 256, length $line;
        if (!$n) {
            waitpid $pid, 0;
            $self->{pid} = undef;
            die "provider-sim exited before listening (status $?): @args\n";
        }
    }
    my ($url) = $line =~ m{^listening on (http://\S+)}
        or die "provider-sim said '$line' instead of 'listening on ...'\n";
    $self->{url} = $url;
    ($self->{port}) = $url =~ /:(\d+)$/;
    # a stats request of --workers waits for every worker (20 s at most)
    $self->{http} = HTTP::Tiny->new(timeout => 60, keep_alive => 0);
    return $self;
}

sub url  { $_[0]{url} }
sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

# the active model of each provider in sql/002_reference_data.sql
our %MODELS = (
    openai => 'gpt-4o-mini', anthropic => 'claude-3-5-haiku-20241022',
    google => 'gemini-1.5-flash', mistral => 'mistral-small-latest',
    deepseek => 'deepseek-chat',
    together => 'meta-llama/Llama-3.3-70B-Instruct-Turbo',
    xai => 'grok-3-mini', perplexity => 'sonar',
);

# the dr_provider lines of the eight providers against this simulator,
# each with an obviously fake key in the environment, as an operator's
# would be: $sim->providers_conf(rpm => 600)
sub providers_conf {
    my ($self, %o) = @_;
    my $conf = '';
    for my $p (sort keys %MODELS) {
        my $env = 'DR_TEST_KEY_' . uc $p;
        $ENV{$env} = "sim-test-key-$p-0001";
        $conf .= sprintf "    dr_provider name=%s base=%s model=%s "
            . "key_env=%s rpm=%d;\n", $p, $self->base_url($p), $MODELS{$p},
            $env, $o{rpm} // 600;
    }
    return $conf;
}

# the http block of a node that crawls against this simulator: the eight
# providers, the queue's workers, no schedule, the admin API behind keys;
# $sim->crawler_conf(rpm => 600, lease => '15s', api => 1, cache => 1)
sub crawler_conf {
    my ($self, %o) = @_;
    my $lease = $o{lease} ? "    dr_runner_lease $o{lease};\n" : '';
    my $api = $o{api} ? "        location / { dr_api; }\n" : '';
    my $cache = $o{cache} ? "    dr_cache zone=api:1m ttl=60s;\n" : '';
    return <<"CONF" . $self->providers_conf(rpm => $o{rpm}) . <<"SERVER";
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_runner on;
${lease}${cache}    dr_schedule off;
CONF

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
${api}    }
SERVER
}

sub base_url {
    my ($self, $provider) = @_;
    my $b = $BASE{$provider} // die "unknown provider '$provider'\n";
    return $self->{url} . $b;
}

sub _json {
    my ($self, $method, $path, $body) = @_;
    my $res = $self->{http}->request($method, $self->{url} . $path,
        defined $body ? { content => encode_json($body),
            headers => { 'content-type' => 'application/json' } } : {});
    die "provider-sim $method $path: $res->{status} $res->{content}\n"
        unless $res->{success};
    return decode_json($res->{content});
}

sub stats {
    my ($self, %o) = @_;
    return $self->_json(GET => '/_sim/stats'
        . (defined $o{recent} && !$o{recent} ? '?recent=0' : ''));
}

# total over-limit requests, all providers and keys
sub over_limit { $_[0]->stats(recent => 0)->{totals}{over_limit} }

# total requests that arrived when their tokens did not fit
sub over_limit_tokens {
    $_[0]->stats(recent => 0)->{totals}{over_limit_tokens};
}

sub reset {
    my ($self, %o) = @_;
    return $self->_json(POST => '/_sim/reset' . ($o{all} ? '?all=1' : ''));
}

sub configure {
    my ($self, %cfg) = @_;
    return $self->_json(POST => '/_sim/config', \%cfg);
}

sub stop {
    my ($self) = @_;
    my $pid = $self->{pid} or return;
    return unless $self->{owner} == $$;
    kill 'TERM', $pid;
    my $deadline = time + 30;
    while (time < $deadline) {
        my $got = waitpid $pid, WNOHANG;
        last if $got == $pid || $got < 0;
        sleep 0.05;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    $self->{status} = $?;
    $self->{pid} = undef;
    close $self->{out} if $self->{out};
    $self->{out} = undef;
    return 1;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop if $self->{pid} && $self->{owner} == $$;
}

END {
    local ($?, $!, $@);
    for my $s (@LIVE) {
        $s->stop if $s && $s->{pid} && $s->{owner} == $$;
    }
}

1;

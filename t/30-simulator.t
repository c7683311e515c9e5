# The provider simulator (t/sim/provider-sim) itself: the three wire
# formats with their exact success and error shapes and headers, the
# rolling per-key limits of requests and of tokens and their 429s,
# forgotten domains, determinism, what the models know of well-known and
# obscure domains and how their answers drift between runs, every fault
# kind, key hygiene in its counters, 2,000 requests sent at once each
# answered with none left in flight, by one process and by workers whose
# counters are summed.  How many it holds at once on a given machine is
# measured by make bench (bench/simulator.md), not asserted here.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use Mojo::IOLoop;
use Mojo::UserAgent;
use POSIX qw(ceil);
use Test::More;
use Time::HiRes qw(sleep time);

my $T0 = time;
my $dir = tempdir('dr-sim-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my %PROMPT = (
    business_analysis => 'What is %s? Describe the business behind it: what '
        . 'it offers, who its customers are and how it makes money.',
    content_strategy => 'How does %s reach people? Describe its content, '
        . 'marketing and distribution strategy and the audience it speaks to.',
    technical_assessment => 'How good is the technology of %s? Assess its '
        . 'product, engineering, reliability and security as far as you know '
        . 'them.',
);
sub prompt { sprintf $PROMPT{ $_[0] }, $_[1] }

my $OKEY = 'sim-test-key-FAKE-openai-k1a2';
my $AKEY = 'sim-test-key-FAKE-anthropic-b3c4';
my $GKEY = 'sim-test-key-FAKE-google-d5e6';

# --------------------------------------------------------------------------
# HTTP helpers

sub http {
    my ($method, $url, %o) = @_;
    my $ht = HTTP::Tiny->new(timeout => $o{timeout} // 15, keep_alive => 0);
    my $body = $o{body};
    $body = JSON::PP->new->utf8->canonical->encode($body) if ref $body;
    my $res = $ht->request($method, $url, {
        headers => { 'content-type' => 'application/json', %{ $o{headers} // {} } },
        defined $body ? (content => $body) : () });
    $res->{json} = eval { JSON::PP->new->utf8->decode($res->{content}) };
    return $res;
}

sub chat {    # OpenAI-compatible
    my ($sim, $path, %o) = @_;
    my $body = $o{body} // { model => $o{model} // 'gpt-4o-mini',
        messages => [{ role => 'user',
            content => $o{prompt} // prompt(business_analysis => 'stripe.com') }],
        defined $o{max_tokens} ? (max_tokens => $o{max_tokens}) : () };
    my %h = %{ $o{headers} // {} };
    $h{authorization} = "Bearer " . ($o{key} // $OKEY) unless $o{no_key};
    return http(POST => $sim->url . $path, body => $body, headers => \%h,
        timeout => $o{timeout});
}

sub messages {    # Anthropic
    my ($sim, %o) = @_;
    my $body = $o{body} // { model => $o{model} // 'claude-3-5-haiku-20241022',
        max_tokens => $o{max_tokens} // 1024,
        messages => [{ role => 'user',
            content => $o{prompt} // prompt(business_analysis => 'stripe.com') }] };
    my %h = %{ $o{headers} // {} };
    $h{'x-api-key'} = $o{key} // $AKEY unless $o{no_key};
    $h{'anthropic-version'} = '2023-06-01' unless $o{no_version};
    return http(POST => $sim->url . ($o{path} // '/anthropic/v1/messages'),
        body => $body, headers => \%h, timeout => $o{timeout});
}

sub gemini {    # Google
    my ($sim, %o) = @_;
    my $model = $o{model} // 'gemini-1.5-flash';
    my $body = $o{body} // { contents => [{ role => 'user', parts => [{ text =>
            $o{prompt} // prompt(business_analysis => 'stripe.com') }] }],
        defined $o{max_tokens}
            ? (generationConfig => { maxOutputTokens => $o{max_tokens} }) : () };
    my $url = $sim->url . ($o{prefix} // '/google') . "/v1beta/models/$model:generateContent";
    my %h = %{ $o{headers} // {} };
    if ($o{query_key}) { $url .= '?key=' . ($o{key} // $GKEY) }
    elsif (!$o{no_key}) { $h{'x-goog-api-key'} = $o{key} // $GKEY }
    return http(POST => $url, body => $body, headers => \%h, timeout => $o{timeout});
}

sub text_of {
    my ($res, $fmt) = @_;
    my $j = $res->{json} or return undef;
    return $j->{choices}[0]{message}{content} if $fmt eq 'openai';
    return $j->{content}[0]{text} if $fmt eq 'anthropic';
    return $j->{candidates}[0]{content}{parts}[0]{text};
}

sub nwords { scalar(my @w = split ' ', $_[0]) }

# cosine similarity of term-frequency vectors, stop words removed (as
# docs/scoring.md): a check that models agree in part, not in whole
my %STOP = map { $_ => 1 } qw(a about above after again against all also am
    an and any are as at be because been before being below between both but
    by can could d did do does doing don down during each few for from
    further had has have having he her here hers herself him himself his how
    i if in into is isn it its itself just ll m me more most my myself no nor
    not now of off on once only or other our ours out over own re s same she
    should so some such t than that the their theirs them themselves then
    there these they this those through to too under until up ve very was we
    were what when where which while who whom why will with would you your
    yours);
sub tf {
    my %v;
    $v{$_}++ for grep { !$STOP{$_} } map { lc } $_[0] =~ /([A-Za-z0-9]+)/g;
    return \%v;
}
sub cosine {
    my ($a, $b) = map { tf($_) } @_;
    my ($dot, $na, $nb) = (0, 0, 0);
    $dot += $a->{$_} * ($b->{$_} // 0) for keys %$a;
    $na += $_**2 for values %$a;
    $nb += $_**2 for values %$b;
    return $na && $nb ? $dot / sqrt($na * $nb) : 0;
}

my @POS = qw(acclaimed admired advanced affordable award awarded awards
    beloved best effective efficient excellent exceptional favorite favourite
    growing growth iconic impressive influential innovation innovative
    innovator leader leading loved outstanding pioneer pioneering popular
    positive powerful praised premier premium profitable prominent reliable
    renowned reputable respected robust seamless secure strong success
    successful superior thriving trusted trustworthy valuable);
my @NEG = qw(abandoned bad bankrupt bankruptcy breach breaches complaints
    controversial controversy criticised criticism criticized dangerous
    deceptive decline declining defunct disappointing fail failed failing
    failure fined fines fraud fraudulent hacked illegal insecure lawsuit
    lawsuits losses malware misleading negative outage outages poor
    problematic risky scam scandal slow spam struggling unreliable unsafe
    vulnerabilities vulnerable weak worst);
my %LEX = ((map { $_ => 1 } @POS), (map { $_ => -1 } @NEG));
sub sentiment_class {
    my ($p, $n) = (0, 0);
    for (map { lc } $_[0] =~ /([A-Za-z0-9]+)/g) {
        next unless $LEX{$_};
        $LEX{$_} > 0 ? $p++ : $n++;
    }
    my $s = $p + $n ? ($p - $n) / ($p + $n) : 0;
    return $s > 0.1 ? 'pos' : $s < -0.1 ? 'neg' : 'neu';
}

my @REFUSAL = ("i'm not familiar with", "i don't have any information",
    "i'm sorry, but i", 'i am not aware of');
sub is_refusal {
    my $t = lc substr($_[0] // '', 0, 200);
    return scalar grep { index($t, $_) >= 0 } @REFUSAL;
}

# --------------------------------------------------------------------------
subtest 'command line' => sub {
    my $sim = $DR::Sim::SCRIPT;
    ok(-x $sim, 'the simulator is executable');
    my $help = `$^X $sim --help`;
    is($? >> 8, 0, '--help exits 0');
    like($help, qr/--latency-ms.*--rpm.*--tpm.*--faults.*--workers/s,
        '--help lists the options');
    system("$^X $sim --listen 0.0.0.0:0 >/dev/null 2>&1");
    is($? >> 8, 2, 'a non-loopback address is refused');
    system("$^X $sim --faults bogus=1 >/dev/null 2>&1");
    is($? >> 8, 2, 'an unknown fault kind is refused');
    system("$^X $sim --faults 500=2 >/dev/null 2>&1");
    is($? >> 8, 2, 'a probability above 1 is refused');
    for my $with ('--rpm 10', '--spec-limits', '--tpm 1000',
                  '--tpm-provider openai=9000', '--faults 500=0.1',
                  '--faults-file /nonexistent') {
        my $err = `$^X $sim --workers 2 $with 2>&1 >/dev/null`;
        is($? >> 8, 2, "--workers 2 $with is refused");
        like($err, qr/^provider-sim: --workers 2 cannot be used with .*kept in one process/,
            '... saying why');
    }
};

my $forget_file = "$dir/forget.txt";
my $state_file = "$dir/state.json";
open my $ff, '>', $forget_file or die;
close $ff;

# every model knows every domain alike: the wire formats and the answers'
# shape are checked on known brands; the knowledge model has its subtest
my $sim = DR::Sim->start(latency_ms => 20, seed => 7, know_all => 1,
    forget => ['forgotten-brand.com'], forget_file => $forget_file,
    state_file => $state_file);
like($sim->url, qr{^http://127\.0\.0\.1:\d+$}, 'announces its URL');
is($sim->port, ($sim->url =~ /(\d+)$/)[0], 'port');

# --------------------------------------------------------------------------
subtest 'OpenAI-compatible chat completions' => sub {
    my @paths = (
        ['/openai/v1/chat/completions', 'openai', 'gpt-4o-mini'],
        ['/v1/chat/completions', 'openai', 'gpt-4o-mini'],
        ['/deepseek/chat/completions', 'deepseek', 'deepseek-chat'],
        ['/deepseek/v1/chat/completions', 'deepseek', 'deepseek-chat'],
        ['/mistral/v1/chat/completions', 'mistral', 'mistral-small-latest'],
        ['/together/v1/chat/completions', 'together',
            'meta-llama/Llama-3.3-70B-Instruct-Turbo'],
        ['/xai/v1/chat/completions', 'xai', 'grok-3-mini'],
        ['/perplexity/chat/completions', 'perplexity', 'sonar'],
    );
    for my $p (@paths) {
        my ($path, $prov, $model) = @$p;
        my $r = chat($sim, $path, model => $model);
        is($r->{status}, 200, "$path: 200");
        is($r->{headers}{'content-type'}, 'application/json', "$path: JSON");
        my $j = $r->{json};
        like($j->{id}, qr/^chatcmpl-\w{20,}$/, "$path: id");
        is($j->{object}, 'chat.completion', "$path: object");
        like($j->{created}, qr/^\d{10}$/, "$path: created");
        like($j->{model}, qr/^\Q$model\E/, "$path: model");
        is(scalar @{ $j->{choices} }, 1, "$path: one choice");
        my $c = $j->{choices}[0];
        is($c->{index}, 0, "$path: index");
        is($c->{message}{role}, 'assistant', "$path: role");
        is($c->{finish_reason}, 'stop', "$path: finish_reason");
        my $text = $c->{message}{content};
        like($text, qr/\bStripe\b/, "$path: names the brand");
        like($text, qr/\bstripe\.com\b/, "$path: names the domain");
        my $w = nwords($text);
        ok($w >= 60 && $w <= 200, "$path: 60-200 words ($w)");
        my $u = $j->{usage};
        is($u->{completion_tokens}, int($w * 1.3 + 0.999999), "$path: completion tokens ~ words x 1.3");
        ok($u->{prompt_tokens} > 20, "$path: prompt tokens");
        is($u->{total_tokens}, $u->{prompt_tokens} + $u->{completion_tokens}, "$path: total");
        if ($prov eq 'perplexity') {
            ok(ref $j->{citations} eq 'ARRAY' && @{ $j->{citations} } >= 3,
                "$path: citations");
            like($j->{citations}[0], qr{^https://stripe\.com/}, "$path: the site is cited");
        }
        else {
            ok(!exists $j->{citations}, "$path: no citations");
        }
        ok(!exists $r->{headers}{'x-ratelimit-limit-requests'},
            "$path: no rate-limit headers without --rpm");
    }
    my $r = chat($sim, '/v1/chat/completions', model => 'sonar');
    is($r->{status}, 200, 'unprefixed path with a Perplexity model');
    ok($r->{json}{citations}, '... is answered as Perplexity');
    is(chat($sim, '/openai/v1/chat/completions', model => 'gpt-4o')->{json}{model},
        'gpt-4o-2024-08-06', 'OpenAI answers with the snapshot behind an alias');
    like(chat($sim, '/openai/v1/chat/completions')->{headers}{'x-request-id'},
        qr/^req_[0-9a-f]{32}$/, 'x-request-id');
};

subtest 'Anthropic messages' => sub {
    for my $path ('/anthropic/v1/messages', '/v1/messages') {
        my $r = messages($sim, path => $path);
        is($r->{status}, 200, "$path: 200");
        my $j = $r->{json};
        like($j->{id}, qr/^msg_01\w{20,}$/, 'id');
        is($j->{type}, 'message', 'type');
        is($j->{role}, 'assistant', 'role');
        is($j->{model}, 'claude-3-5-haiku-20241022', 'model');
        is(scalar @{ $j->{content} }, 1, 'one content block');
        is($j->{content}[0]{type}, 'text', 'text block');
        like($j->{content}[0]{text}, qr/\bStripe \(stripe\.com\)|stripe\.com/, 'names the domain');
        is($j->{stop_reason}, 'end_turn', 'stop_reason');
        ok(exists $j->{stop_sequence} && !defined $j->{stop_sequence}, 'stop_sequence null');
        ok($j->{usage}{input_tokens} > 0 && $j->{usage}{output_tokens} > 0, 'usage');
        like($r->{headers}{'request-id'}, qr/^req_/, 'request-id header');
    }
    my $r = messages($sim, body => { model => 'claude-3-5-haiku-20241022',
        max_tokens => 500, system => 'You are a market analyst.',
        messages => [{ role => 'user', content => [{ type => 'text',
            text => prompt(technical_assessment => 'github.com') }] }] });
    is($r->{status}, 200, 'system prompt and content blocks');
    like($r->{json}{content}[0]{text}, qr/GitHub/, 'the domain is taken from the user turn');
};

subtest 'Google Gemini generateContent' => sub {
    for my $how ([prefix => '/google'], [prefix => ''], [query_key => 1]) {
        my $r = gemini($sim, @$how);
        is($r->{status}, 200, "@$how: 200");
        like($r->{headers}{'content-type'}, qr{^application/json; charset=UTF-8$}, 'content type');
        my $j = $r->{json};
        my $c = $j->{candidates}[0];
        is($c->{content}{role}, 'model', 'role model');
        like($c->{content}{parts}[0]{text}, qr/stripe\.com/, 'names the domain');
        is($c->{finishReason}, 'STOP', 'finishReason');
        is($c->{index}, 0, 'index');
        my $u = $j->{usageMetadata};
        ok($u->{promptTokenCount} > 0 && $u->{candidatesTokenCount} > 0, 'usage');
        is($u->{totalTokenCount}, $u->{promptTokenCount} + $u->{candidatesTokenCount}, 'total');
        is($j->{modelVersion}, 'gemini-1.5-flash', 'modelVersion');
        ok(!exists $r->{headers}{'retry-after'}, 'no rate-limit headers');
    }
};

subtest 'error shapes' => sub {
    my $r = chat($sim, '/openai/v1/chat/completions', no_key => 1);
    is($r->{status}, 401, 'OpenAI without a key: 401');
    is($r->{json}{error}{code}, 'invalid_api_key', '... invalid_api_key');
    is($r->{json}{error}{type}, 'invalid_request_error', '... type');
    ok(exists $r->{json}{error}{param} && !defined $r->{json}{error}{param}, '... param null');
    like($r->{json}{error}{message}, qr/API key/, '... message');

    $r = chat($sim, '/openai/v1/chat/completions', body => '{"model": ');
    is($r->{status}, 400, 'OpenAI body that is not JSON: 400');
    is($r->{json}{error}{type}, 'invalid_request_error', '... type');
    $r = chat($sim, '/openai/v1/chat/completions', body => { messages => [] });
    is($r->{status}, 400, 'OpenAI without model: 400');
    $r = chat($sim, '/openai/v1/chat/completions', body => { model => 'gpt-4o-mini' });
    is($r->{status}, 400, 'OpenAI without messages: 400');
    is($r->{json}{error}{param}, 'messages', '... param messages');
    $r = chat($sim, '/openai/v1/chat/completions', model => 'gpt-9-imaginary');
    is($r->{status}, 404, 'OpenAI unknown model: 404');
    is($r->{json}{error}{code}, 'model_not_found', '... model_not_found');
    $r = chat($sim, '/mistral/v1/chat/completions', model => 'gpt-4o-mini');
    is($r->{status}, 404, 'a model of another provider: 404');
    $r = http(GET => $sim->url . '/openai/v1/chat/completions',
        headers => { authorization => "Bearer $OKEY" });
    is($r->{status}, 405, 'GET: 405');
    $r = http(POST => $sim->url . '/openai/v1/nothing-here');
    is($r->{status}, 404, 'unknown path: 404');
    like($r->{json}{error}{message}, qr/Invalid URL/, '... in OpenAI shape');

    $r = messages($sim, no_key => 1);
    is($r->{status}, 401, 'Anthropic without x-api-key: 401');
    is_deeply([ @{ $r->{json} }{qw(type)}, $r->{json}{error}{type} ],
        ['error', 'authentication_error'], '... authentication_error');
    ok(length $r->{json}{error}{message}, '... message');
    $r = messages($sim, no_version => 1);
    is($r->{status}, 400, 'Anthropic without anthropic-version: 400');
    is($r->{json}{error}{type}, 'invalid_request_error', '... invalid_request_error');
    like($r->{json}{error}{message}, qr/anthropic-version/, '... names the header');
    $r = messages($sim, body => { model => 'claude-3-5-haiku-20241022',
        messages => [{ role => 'user', content => 'hi' }] });
    is($r->{status}, 400, 'Anthropic without max_tokens: 400');
    like($r->{json}{error}{message}, qr/max_tokens/, '... names the field');
    $r = messages($sim, model => 'claude-0');
    is($r->{status}, 404, 'Anthropic unknown model: 404');
    is($r->{json}{error}{type}, 'not_found_error', '... not_found_error');

    $r = gemini($sim, no_key => 1);
    is($r->{status}, 403, 'Gemini without a key: 403 (as the real API)');
    is($r->{json}{error}{status}, 'PERMISSION_DENIED', '... PERMISSION_DENIED');
    is($r->{json}{error}{code}, 403, '... code');
    $r = gemini($sim, body => 'not json');
    is($r->{status}, 400, 'Gemini body that is not JSON: 400');
    is($r->{json}{error}{status}, 'INVALID_ARGUMENT', '... INVALID_ARGUMENT');
    $r = gemini($sim, body => { contents => [] });
    is($r->{status}, 400, 'Gemini without contents: 400');
    $r = gemini($sim, model => 'gemini-0.1-imaginary');
    is($r->{status}, 404, 'Gemini unknown model: 404');
    is($r->{json}{error}{status}, 'NOT_FOUND', '... NOT_FOUND');
};

subtest 'max_tokens truncates the answer' => sub {
    my $r = chat($sim, '/openai/v1/chat/completions', max_tokens => 20);
    my $j = $r->{json};
    is($j->{choices}[0]{finish_reason}, 'length', 'OpenAI: finish_reason length');
    is($j->{usage}{completion_tokens}, 20, '... completion_tokens = max_tokens');
    is(nwords($j->{choices}[0]{message}{content}), 15, '... 20 / 1.3 words');
    $r = messages($sim, max_tokens => 13);
    is($r->{json}{stop_reason}, 'max_tokens', 'Anthropic: stop_reason max_tokens');
    is($r->{json}{usage}{output_tokens}, 13, '... output_tokens');
    $r = gemini($sim, max_tokens => 26);
    is($r->{json}{candidates}[0]{finishReason}, 'MAX_TOKENS', 'Gemini: MAX_TOKENS');
    is($r->{json}{usageMetadata}{candidatesTokenCount}, 26, '... candidatesTokenCount');
    $r = chat($sim, '/openai/v1/chat/completions', max_tokens => 4000);
    is($r->{json}{choices}[0]{finish_reason}, 'stop', 'a large max_tokens: stop');
};

subtest 'answers: prompt kinds, consensus, sentiment' => sub {
    my %t;
    for my $kind (sort keys %PROMPT) {
        $t{$kind} = text_of(chat($sim, '/openai/v1/chat/completions',
            prompt => prompt($kind => 'salesforce.com')), 'openai');
    }
    like($t{business_analysis}, qr/customers|revenue|money/, 'business analysis talks business');
    like($t{content_strategy}, qr/reach|audience|channels/, 'content strategy talks channels');
    like($t{technical_assessment}, qr/technology|engineering|security|infrastructure|platform|TLS/, 'technical assessment talks technology');
    isnt($t{business_analysis}, $t{technical_assessment}, 'kinds differ');

    # different models: partly the same words (consensus), never identical
    my @models = (['/openai/v1/chat/completions', 'gpt-4o-mini'],
        ['/deepseek/chat/completions', 'deepseek-chat'],
        ['/mistral/v1/chat/completions', 'mistral-small-latest'],
        ['/xai/v1/chat/completions', 'grok-3-mini']);
    my @texts = map { text_of(chat($sim, $_->[0], model => $_->[1],
        prompt => prompt(business_analysis => 'shopify.com')), 'openai') } @models;
    my @sims;
    for my $i (0 .. $#texts) {
        for my $j ($i + 1 .. $#texts) { push @sims, cosine($texts[$i], $texts[$j]) }
    }
    my $mean = 0;
    $mean += $_ / @sims for @sims;
    ok($mean > 0.25 && $mean < 0.95, sprintf 'models overlap partly (mean cosine %.2f)', $mean);
    ok(!grep({ $_ > 0.999 } @sims), 'no two models answer identically');

    # tone: mostly positive, some neutral and negative
    my %class;
    my ($ok_len, $named) = (0, 0);
    my @domains = map { "brand$_-example.com" } 1 .. 45;
    for my $d (@domains) {
        my $t = text_of(chat($sim, '/openai/v1/chat/completions',
            prompt => prompt(business_analysis => $d)), 'openai');
        $class{ sentiment_class($t) }++;
        my $w = nwords($t);
        $ok_len++ if $w >= 60 && $w <= 200;
        $named++ if index($t, $d) >= 0;
    }
    is($ok_len, scalar @domains, 'every answer has 60-200 words');
    is($named, scalar @domains, 'every answer names its domain');
    note(explain(\%class));
    ok(($class{pos} // 0) > @domains / 2, 'most answers are positive');
    ok(($class{neu} // 0) > 0, 'some are neutral');
    ok(($class{neg} // 0) > 0, 'some are negative');

    my $t = text_of(chat($sim, '/openai/v1/chat/completions',
        prompt => 'Tell me something interesting.'), 'openai');
    like($t, qr/which website/, 'a prompt without a domain asks which one');
};

subtest 'forgotten domains' => sub {
    my $r = chat($sim, '/openai/v1/chat/completions',
        prompt => prompt(business_analysis => 'forgotten-brand.com'));
    is($r->{status}, 200, 'a refusal is still a 200');
    my $t = text_of($r, 'openai');
    ok(is_refusal($t), 'a refusal phrase opens the answer') or diag $t;
    like($t, qr/forgotten-brand\.com/, 'it names what it does not know');
    $r = chat($sim, '/perplexity/chat/completions', model => 'sonar',
        prompt => prompt(business_analysis => 'www.forgotten-brand.com'));
    ok(is_refusal(text_of($r, 'openai')), 'subdomains are forgotten too');
    is_deeply($r->{json}{citations}, [], 'Perplexity cites nothing for it');
    $r = messages($sim, prompt => prompt(content_strategy => 'forgotten-brand.com'));
    ok(is_refusal(text_of($r, 'anthropic')), 'Anthropic refuses too');
    $r = gemini($sim, prompt => prompt(technical_assessment => 'forgotten-brand.com'));
    ok(is_refusal(text_of($r, 'google')), 'Gemini refuses too');

    my $before = text_of(chat($sim, '/openai/v1/chat/completions',
        prompt => prompt(business_analysis => 'later-forgotten.org')), 'openai');
    ok(!is_refusal($before), 'a domain is recalled');
    open my $fh, '>', $forget_file or die;
    print $fh "# forgotten between runs\nlater-forgotten.org\n";
    close $fh;
    ok(is_refusal(text_of(chat($sim, '/openai/v1/chat/completions',
        prompt => prompt(business_analysis => 'later-forgotten.org')), 'openai')),
        'after it is added to --forget-file, it is forgotten');
    open $fh, '>', $forget_file or die;
    close $fh;
    is(text_of(chat($sim, '/openai/v1/chat/completions',
        prompt => prompt(business_analysis => 'later-forgotten.org')), 'openai'),
        $before, 'removed from the file, it is recalled as before');
};

subtest 'determinism' => sub {
    my $p = prompt(content_strategy => 'airbnb.com');
    my $a1 = text_of(chat($sim, '/openai/v1/chat/completions', prompt => $p), 'openai');
    my $a2 = text_of(chat($sim, '/openai/v1/chat/completions', prompt => $p), 'openai');
    is($a1, $a2, 'same request, same answer');
    my $same = DR::Sim->start(latency_ms => 0, seed => 7, know_all => 1);
    is(text_of(chat($same, '/openai/v1/chat/completions', prompt => $p), 'openai'),
        $a1, 'another process with the same seed gives the same answer');
    is(text_of(gemini($same, prompt => $p), 'google'),
        text_of(gemini($sim, prompt => $p), 'google'), '... for Gemini too');
    my $other = DR::Sim->start(latency_ms => 0, seed => 8, know_all => 1);
    isnt(text_of(chat($other, '/openai/v1/chat/completions', prompt => $p), 'openai'),
        $a1, 'another seed gives another answer');
};

# --------------------------------------------------------------------------
# the knowledge model (the default): the refusal phrases and the rule of
# docs/scoring.md decide what a stored answer counts for

my @REFUSAL_ALL = ('as an ai language model', 'as an ai, i',
    'i am not aware of', 'i am not familiar with', 'i am sorry, but i',
    'i am unable to provide', "i can't provide", 'i cannot provide',
    'i could not find any information', "i couldn't find any information",
    'i do not have any information', 'i do not have information',
    'i do not have specific information', 'i do not know of',
    "i don't have any information", "i don't have information",
    "i don't have specific information", "i don't know of",
    'i have no information', "i'm not aware of", "i'm not familiar with",
    "i'm sorry, but i", "i'm unable to provide", 'no information available',
    'not enough information');

# (valid, recognized) of an answer about a domain, as the scorer sees it
sub verdict {
    my ($text, $domain) = @_;
    my $head = lc substr($text // '', 0, 200);
    my $refusal = grep { $head =~ /(?<![a-z0-9])\Q$_\E(?![a-z0-9])/ }
        @REFUSAL_ALL;
    my $valid = !$refusal && length($text // '') >= 40;
    my ($brand) = $domain =~ /([^.]+)\.[^.]+$/;
    return ($valid ? 1 : 0,
        $valid && $text =~ /(?<![A-Za-z0-9])\Q$brand\E(?![A-Za-z0-9])/i
            ? 1 : 0);
}

# one "run": every model of make run's configuration asked the three
# prompts about each domain; per domain its answers and recognized count
my @MODELS8 = (['/openai/v1/chat/completions', 'gpt-4o-mini'],
    ['anthropic', 'claude-3-5-haiku-20241022'], ['google', 'gemini-1.5-flash'],
    ['/mistral/v1/chat/completions', 'mistral-small-latest'],
    ['/deepseek/chat/completions', 'deepseek-chat'],
    ['/together/v1/chat/completions',
        'meta-llama/Llama-3.3-70B-Instruct-Turbo'],
    ['/xai/v1/chat/completions', 'grok-3-mini'],
    ['/perplexity/chat/completions', 'sonar']);
sub ask_all {
    my ($s, @domains) = @_;
    my %run;
    for my $d (@domains) {
        for my $m (@MODELS8) {
            my ($how, $model) = @$m;
            for my $kind (sort keys %PROMPT) {
                my $p = prompt($kind => $d);
                my $text = $how eq 'anthropic'
                    ? text_of(messages($s, model => $model, prompt => $p),
                        'anthropic')
                    : $how eq 'google'
                    ? text_of(gemini($s, model => $model, prompt => $p),
                        'google')
                    : text_of(chat($s, $how, model => $model, prompt => $p),
                        'openai');
                my ($valid, $rec) = verdict($text, $d);
                push @{ $run{$d}{answers} }, { model => $model,
                    kind => $kind, text => $text, valid => $valid,
                    recognized => $rec };
                $run{$d}{recognized} += $rec;
                $run{$d}{by_model}{$model} += $rec;
            }
        }
    }
    return \%run;
}

subtest 'knowledge: famous brands remembered, the long tail not' => sub {
    my @famous = qw(google.com github.com stripe.com openai.com apple.com
        microsoft.com amazon.com netflix.com shopify.com notion.so);
    my @tail = map { "$_-example.net" } qw(bluepine tinyshop acme-widgets
        riverside-bakery northwind-advisors qzv-labs);
    my $k = DR::Sim->start(latency_ms => 0, seed => 7);
    my $run = ask_all($k, @famous, @tail);

    my %distinct;
    for my $d (@famous) {
        my $mem = 100 * $run->{$d}{recognized} / 24;
        ok($mem >= 60, sprintf '%s is remembered: %.1f%% of 24 answers name '
            . 'it', $d, $mem);
        $distinct{ $run->{$d}{recognized} }++;
    }
    ok(keys %distinct >= 3, 'ten well-known brands get '
        . scalar(keys %distinct) . ' distinct memory scores (3 or more): '
        . join(', ', map { sprintf '%.1f', 100 * $_ / 24 }
            sort { $a <=> $b } keys %distinct));

    my ($tail_rec, $refusals, $guesses) = (0, 0, 0);
    for my $d (@tail) {
        my $mem = 100 * $run->{$d}{recognized} / 24;
        ok($mem <= 30, sprintf 'the obscure %s scores low: %.1f%%', $d, $mem);
        for my $a (@{ $run->{$d}{answers} }) {
            $refusals++ if !$a->{valid};
            $guesses++ if $a->{valid} && !$a->{recognized};
        }
    }
    ok($refusals >= @tail * 24 / 2, "most answers about them are "
        . "\"I don't know this\" answers ($refusals of " . @tail * 24 . ')');
    ok($guesses > 0, "some models guess from the name without naming it "
        . "($guesses answers: valid, not recognized)");

    # a known brand missing a detail: the answer opens with a refusal
    my ($partial) = grep { !$_->{valid} && $_->{text} =~ /\b(?:Stripe|GitHub
        |Google|OpenAI|Apple|Microsoft|Amazon|Netflix|Shopify|Notion)\b/x }
        map { @{ $run->{$_}{answers} } } @famous;
    ok($partial, 'a model knowing a brand but not what a prompt asks '
        . 'hedges with a refusal phrase') and note($partial->{text});

    # tone: some answers about famous brands are negative
    my %class;
    $class{ sentiment_class($_->{text}) }++ for grep { $_->{recognized} }
        map { @{ $run->{$_}{answers} } } @famous;
    note(explain(\%class));
    ok(($class{pos} // 0) > ($class{neg} // 0), 'most are positive');
    ok(($class{neg} // 0) > 0, 'some are negative');

    # models differ: over all domains, not every model recognizes as much
    my %by_model;
    for my $d (@famous, @tail) {
        $by_model{$_} += $run->{$d}{by_model}{$_}
            for keys %{ $run->{$d}{by_model} };
    }
    my %counts = map { $_ => 1 } values %by_model;
    ok(keys %counts > 1, 'models know different amounts: '
        . join(', ', map { "$_ $by_model{$_}" } sort keys %by_model));

    # the second run: some answers change, most stay; the same again in
    # another process with the same seed
    my $run2 = ask_all($k, @famous);
    my ($changed, $all) = (0, 0);
    for my $d (@famous) {
        for my $i (0 .. $#{ $run->{$d}{answers} }) {
            $all++;
            $changed++ if $run->{$d}{answers}[$i]{text}
                ne $run2->{$d}{answers}[$i]{text};
        }
    }
    ok($changed > 0 && $changed < $all / 2, "the next run drifts: $changed "
        . "of $all answers changed");
    my $again = DR::Sim->start(latency_ms => 0, seed => 7);
    my $r1 = ask_all($again, 'stripe.com');
    my $r2 = ask_all($again, 'stripe.com');
    is_deeply([map { $_->{text} } @{ $r1->{'stripe.com'}{answers} },
                                   @{ $r2->{'stripe.com'}{answers} }],
        [map { $_->{text} } @{ $run->{'stripe.com'}{answers} },
                            @{ $run2->{'stripe.com'}{answers} }],
        'another process with the same seed answers both runs alike');
    $again->reset(all => 1);
    is(text_of(chat($again, '/openai/v1/chat/completions',
        prompt => prompt(business_analysis => 'stripe.com')), 'openai'),
        $run->{'stripe.com'}{answers}[0]{text},
        'POST /_sim/reset?all=1 starts again at the first run');

    # --know-all, at start or set later: every model names every domain,
    # and a question is answered alike every time
    $k->configure(know_all => JSON::PP::true);
    is($k->stats->{config}{know_all}, JSON::PP::true, 'know_all is set');
    my $all_known = ask_all($k, @tail[0, 1]);
    is($all_known->{$_}{recognized}, 24, "with know_all $_ is named in all "
        . '24 answers') for @tail[0, 1];
    my $all_again = ask_all($k, $tail[0]);
    is_deeply([map { $_->{text} } @{ $all_again->{$tail[0]}{answers} }],
        [map { $_->{text} } @{ $all_known->{$tail[0]}{answers} }],
        '... and answered alike the next time');
    my $cfg = eval { $k->configure(drift => 2) };
    ok(!$cfg, 'a drift above 1 is refused');
};

subtest 'stats: shape, traces, keys never stored' => sub {
    $sim->reset;
    my $st = $sim->stats;
    is($st->{totals}{requests}, 0, 'reset clears the counters');
    chat($sim, '/openai/v1/chat/completions', headers => {
        traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        'x-request-id' => 'dr-req-42' });
    chat($sim, '/openai/v1/chat/completions', no_key => 1);
    messages($sim);
    gemini($sim, query_key => 1);
    $st = $sim->stats;
    ok($st->{simulated}, 'marked simulated');
    for my $f (qw(requests accepted rejected_429 over_limit over_limit_tokens
                  unauthenticated in_flight max_in_flight faults status)) {
        ok(exists $st->{totals}{$f}, "totals.$f");
    }
    is($st->{totals}{requests}, 4, 'four requests');
    is($st->{totals}{unauthenticated}, 1, 'one without a key');
    is($st->{providers}{openai}{requests}, 2, 'per provider');
    my $k = $st->{providers}{openai}{keys};
    is_deeply([keys %$k], ['k1a2'], 'keys are shown by their last 4 characters');
    for my $f (qw(requests accepted rejected_429 over_limit over_limit_tokens
                  in_flight max_in_flight faults status limit limit_tokens)) {
        ok(exists $k->{k1a2}{$f}, "keys.k1a2.$f");
    }
    is($k->{k1a2}{requests}, 1, 'per key requests');
    is($k->{k1a2}{status}{200}, 1, 'per key status');
    ok($st->{providers}{anthropic}{keys}{'b3c4'}, 'Anthropic key by last 4');
    ok($st->{providers}{google}{keys}{'d5e6'}, 'Gemini key by last 4 (from ?key=)');

    my ($trace) = grep { ($_->{x_request_id} // '') eq 'dr-req-42' } @{ $st->{recent} };
    ok($trace, 'the x-request-id is recorded');
    is($trace->{traceparent}, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        '... with the traceparent');
    is($trace->{key_last4}, 'k1a2', '... and the key\'s last 4');
    is($trace->{path}, '/openai/v1/chat/completions', '... and the path');
    is($trace->{status}, 200, '... and the status');
    my ($g) = grep { $_->{provider} eq 'google' } @{ $st->{recent} };
    unlike($g->{path}, qr/key|\?/, 'the ?key= query is not recorded');

    my $raw = http(GET => $sim->url . '/_sim/stats')->{content};
    for my $secret ($OKEY, $AKEY, $GKEY) {
        my $mid = substr($secret, 8, 12);
        ok(index($raw, $mid) < 0, "no part of a key but its end in /_sim/stats ($mid)");
    }
    kill 'USR1', $sim->pid;
    my ($state, $sj) = ('', {});
    DR::Test::wait_for(sub {
        open my $fh, '<', $state_file or return 0;
        $state = do { local $/; <$fh> } // '';
        $sj = eval { decode_json($state) } // {};
        $sj->{recent};
    }, 30);
    ok($sj->{totals}{requests} >= 4, 'the state file holds the counters');
    ok($sj->{recent}, '... and, after SIGUSR1, the recent requests');
    ok(index($state, substr($OKEY, 8, 12)) < 0, 'no key in the state file');

    # invalid keys (--keys-file) are answered 401 and the message masks them
    my $kf = "$dir/keys.txt";
    open my $kh, '>', $kf or die;
    print $kh "$OKEY\n";
    close $kh;
    my $strict = DR::Sim->start(latency_ms => 0, keys_file => $kf);
    is(chat($strict, '/openai/v1/chat/completions')->{status}, 200, 'a listed key is valid');
    my $r = chat($strict, '/openai/v1/chat/completions', key => 'sk-wrong-key-0000-9999');
    is($r->{status}, 401, 'an unlisted key gets 401');
    is($r->{json}{error}{code}, 'invalid_api_key', '... invalid_api_key');
    unlike($r->{json}{error}{message}, qr/wrong-key/, '... whose message shows no more than the end');
    $r = gemini($strict, key => 'AIza-not-a-valid-key-7777');
    is($r->{status}, 400, 'Gemini: an invalid key is 400 (as the real API)');
    is($r->{json}{error}{details}[0]{reason}, 'API_KEY_INVALID', '... API_KEY_INVALID');
};

# --------------------------------------------------------------------------
# The windows are far longer than the requests that must fall in them
# take, and a client paces itself from the answers it got: what the
# simulator counts does not depend on how fast this machine is.
subtest 'rate limit: rolling window per key' => sub {
    my $win = 5;
    my $rl = DR::Sim->start(latency_ms => 0, rpm => 3, window_s => $win,
        rpm_provider => { anthropic => 1 });
    my @rem;
    my ($first_sent, $first_got);
    for (1 .. 3) {
        my $sent = time;
        my $r = chat($rl, '/openai/v1/chat/completions');
        ($first_sent, $first_got) = ($sent, time) unless defined $first_sent;
        is($r->{status}, 200, 'within the limit: 200');
        is($r->{headers}{'x-ratelimit-limit-requests'}, 3, 'x-ratelimit-limit-requests');
        like($r->{headers}{'x-ratelimit-reset-requests'}, qr/^(\d+ms|\d+(\.\d+)?s|\d+m\d+(\.\d+)?s)$/,
            'x-ratelimit-reset-requests is a duration');
        push @rem, $r->{headers}{'x-ratelimit-remaining-requests'};
    }
    is_deeply(\@rem, [2, 1, 0], 'x-ratelimit-remaining-requests counts down');
    my $t429 = time;
    my $r = chat($rl, '/openai/v1/chat/completions');
    my $t429_got = time;
    is($r->{status}, 429, 'over the limit: 429');
    is($r->{json}{error}{code}, 'rate_limit_exceeded', '... rate_limit_exceeded');
    is($r->{json}{error}{type}, 'requests', '... type requests');
    like($r->{json}{error}{message}, qr/Limit 3, Used 3/, '... message with the figures');
    # the first request leaves the window $win s after it arrived, which
    # was between its sending and its answer; this one arrived likewise
    my ($least, $most) = (ceil($first_sent + $win - $t429_got),
                          ceil($first_got + $win - $t429));
    my $ra = $r->{headers}{'retry-after'} // -1;
    ok($ra >= $least && $ra <= $most && $ra >= 1,
        "retry-after: seconds until a slot frees ($ra, from $least to $most)");
    is($r->{headers}{'x-ratelimit-remaining-requests'}, 0, 'remaining 0 on the 429');
    is(chat($rl, '/openai/v1/chat/completions', key => 'sk-another-key-zzzz')->{status},
        200, 'another key has its own budget');

    my $st = $rl->stats->{providers}{openai}{keys}{k1a2};
    is($st->{over_limit}, 1, 'the request over the limit is counted');
    is($st->{rejected_429}, 1, '... as a 429');
    is($st->{accepted}, 3, '... and not as accepted');

    my $a = messages($rl);
    is($a->{status}, 200, 'Anthropic (limit 1 by --rpm-provider): first is 200');
    is($a->{headers}{'anthropic-ratelimit-requests-limit'}, 1, 'anthropic-ratelimit-requests-limit');
    is($a->{headers}{'anthropic-ratelimit-requests-remaining'}, 0, 'anthropic-ratelimit-requests-remaining');
    like($a->{headers}{'anthropic-ratelimit-requests-reset'},
        qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'anthropic-ratelimit-requests-reset is RFC 3339');
    $a = messages($rl);
    is($a->{status}, 429, 'Anthropic over the limit: 429');
    is($a->{json}{type}, 'error', '... error document');
    is($a->{json}{error}{type}, 'rate_limit_error', '... rate_limit_error');
    ok($a->{headers}{'retry-after'} >= 1, '... retry-after');

    for (1 .. 3) { gemini($rl) }
    my $g = gemini($rl);
    is($g->{status}, 429, 'Gemini over the limit: 429');
    is($g->{json}{error}{status}, 'RESOURCE_EXHAUSTED', '... RESOURCE_EXHAUSTED');
    is($g->{json}{error}{code}, 429, '... code 429');
    ok(!exists $g->{headers}{'retry-after'}, '... no retry-after header, as Google');
    my ($ri) = grep { $_->{'@type'} =~ /RetryInfo/ } @{ $g->{json}{error}{details} };
    like($ri->{retryDelay}, qr/^\d+s$/, '... the delay is in RetryInfo');

    # after Retry-After the key has budget again
    my $wait = $t429_got + $ra - time;
    sleep $wait if $wait > 0;
    is(chat($rl, '/openai/v1/chat/completions')->{status}, 200,
        'after retry-after the request is accepted');
    is($rl->stats->{totals}{over_limit}, 3, 'over_limit in total: openai, anthropic, google');

    # a client pacing itself at the limit is never over it: it waits 0.3 s
    # after each answer, so the simulator sees its requests at least 0.3 s
    # apart, never three in a window of 0.5 s
    my $paced = DR::Sim->start(latency_ms => 0, rpm => 2, window_s => 0.5);
    my @st;
    for my $i (0 .. 7) {
        push @st, chat($paced, '/xai/v1/chat/completions', model => 'grok-3-mini')->{status};
        sleep 0.3;
    }
    is_deeply([grep { $_ != 200 } @st], [], 'a paced client gets only 200s');
    is($paced->over_limit, 0, '... and over_limit stays 0');
};

# --------------------------------------------------------------------------
# A request is charged ceil(characters of its message text / 4) + its
# max_tokens on arrival; the numbers below are worked out by hand.  The
# first request leaves the window of $win s in the middle of the others':
# they come $win / 2 s after it, and the last $win s after it.
subtest 'token limit: rolling window per key' => sub {
    my $win = 6;
    my $tl = DR::Sim->start(latency_ms => 0, tpm => 1000, window_s => $win,
        rpm => 100, tpm_provider => { anthropic => 250 });
    my $o = sub {    # OpenAI body of $chars characters
        my ($chars, %f) = @_;
        my $key = delete $f{key};
        return chat($tl, '/openai/v1/chat/completions', key => $key,
            body => { model => 'gpt-4o-mini',
                messages => [{ role => 'user', content => 'x' x $chars }],
                %f });
    };

    my $t1 = time;
    my $r = $o->(401, max_tokens => 299);    # 101 + 299 = 400
    my $t1_got = time;
    is($r->{status}, 200, '400 tokens of 1000: 200');
    is($r->{headers}{'x-ratelimit-limit-tokens'}, 1000, 'x-ratelimit-limit-tokens');
    is($r->{headers}{'x-ratelimit-remaining-tokens'}, 600,
        'x-ratelimit-remaining-tokens: 401 characters are 101 tokens, + 299');
    like($r->{headers}{'x-ratelimit-reset-tokens'}, qr/^(\d+ms|\d+(\.\d+)?s)$/,
        'x-ratelimit-reset-tokens is a duration');
    is($r->{headers}{'x-ratelimit-limit-requests'}, 100, '... beside the request headers');
    sleep $win / 2;    # the rest come later: the first leaves before them

    # max_completion_tokens is what counts when both are given
    $r = $o->(400, max_completion_tokens => 300, max_tokens => 5);
    is($r->{headers}{'x-ratelimit-remaining-tokens'}, 200,
        'max_completion_tokens wins over max_tokens: 100 + 300 charged');

    my $t429 = time;
    $r = $o->(4, max_tokens => 200);    # 1 + 200: 1001 > 1000
    my $t429_got = time;
    is($r->{status}, 429, 'one token over the limit: 429');
    is($r->{json}{error}{type}, 'tokens', '... type tokens');
    is($r->{json}{error}{code}, 'rate_limit_exceeded', '... rate_limit_exceeded');
    like($r->{json}{error}{message}, qr/^Rate limit reached for gpt-4o-mini in organization org-\w+ on tokens per min \(TPM\): Limit 1000, Used 800, Requested 201\. Please try again in (\d+ms|\d+(\.\d+)?s)\./,
        '... OpenAI\'s message with the figures');
    my ($least, $most) = (ceil($t1 + $win - $t429_got),
                          ceil($t1_got + $win - $t429));
    my $ra = $r->{headers}{'retry-after'} // -1;
    ok($ra >= $least && $ra <= $most && $ra >= 1,
        'retry-after: until the first request\'s tokens leave, rounded up '
        . "($ra, from $least to $most)");
    is($r->{headers}{'x-ratelimit-remaining-tokens'}, 200, 'remaining tokens on the 429');
    is($r->{headers}{'x-ratelimit-remaining-requests'}, 98,
        'a refused request takes no request slot either');

    $r = $o->(4, max_tokens => 199);    # 1 + 199: exactly 1000
    is($r->{status}, 200, 'up to the limit exactly: 200');
    is($r->{headers}{'x-ratelimit-remaining-tokens'}, 0, '... 0 remaining');
    is($o->(4, max_tokens => 1)->{status}, 429, '2 more tokens: 429');
    is($o->(400, key => 'sk-another-key-zzzz', max_tokens => 300)->{status}, 200,
        'another key has its own tokens');

    $r = $o->(4);    # 1 + 4096, more than the limit itself
    is($r->{status}, 429, 'no max_tokens: 4096 are charged, more than the limit');
    like($r->{json}{error}{message},
        qr/^Request too large for gpt-4o-mini .* on tokens per min \(TPM\): Limit 1000, Requested 4097\./,
        '... "Request too large"');

    my $st = $tl->stats->{providers}{openai}{keys}{k1a2};
    is($st->{over_limit_tokens}, 3, 'the three requests whose tokens did not fit are counted');
    is($st->{over_limit}, 0, '... not as over the request limit');
    is($st->{accepted}, 3, '... nor as accepted');
    is($st->{rejected_429}, 3, '... answered 429');
    is($st->{limit_tokens}, 1000, 'the key\'s token limit is shown');

    # the window frees the first request's tokens $win s after it, the
    # others' $win / 2 s later
    my $wait = $t429_got + $ra - time;
    my $gone = $t1_got + $win + 0.05 - time;
    $wait = $gone if $gone > $wait;
    sleep $wait if $wait > 0;
    $r = $o->(401, max_tokens => 299);
    is($r->{status}, 200, 'after retry-after, 400 tokens fit again');
    is($r->{headers}{'x-ratelimit-remaining-tokens'}, 0,
        '... beside the second\'s 400 and the fourth\'s 200, still in the window');

    # Anthropic (--tpm-provider anthropic=250): the system prompt and every
    # message count: 40 + 80 + 20 + 19 + 1 (the newline joining two
    # blocks) = 160 characters, 40 tokens, + 60
    my $body = { model => 'claude-3-5-haiku-20241022', max_tokens => 60,
        system => 's' x 40, messages => [
            { role => 'user', content => 'u' x 80 },
            { role => 'assistant', content => 'a' x 20 },
            { role => 'user', content => [{ type => 'text', text => 'b' x 10 },
                { type => 'text', text => 'c' x 9 }] }] };
    my $a = messages($tl, body => $body);
    is($a->{status}, 200, 'Anthropic: 100 tokens of 250');
    is($a->{headers}{'anthropic-ratelimit-tokens-limit'}, 250,
        'anthropic-ratelimit-tokens-limit (--tpm-provider)');
    is($a->{headers}{'anthropic-ratelimit-tokens-remaining'}, 150,
        'anthropic-ratelimit-tokens-remaining');
    like($a->{headers}{'anthropic-ratelimit-tokens-reset'},
        qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'anthropic-ratelimit-tokens-reset is RFC 3339');
    is(messages($tl, body => $body)->{status}, 200, '200 of 250');
    $a = messages($tl, body => $body);
    is($a->{status}, 429, '300 of 250: 429');
    is($a->{json}{error}{type}, 'rate_limit_error', '... rate_limit_error');
    like($a->{json}{error}{message}, qr/250 tokens per minute/, '... names the limit');
    ok($a->{headers}{'retry-after'} >= 1, '... retry-after');
    is($a->{headers}{'anthropic-ratelimit-tokens-remaining'}, 50, '... 50 remaining');

    # Gemini: systemInstruction and contents, 8 + 12 characters, 5 tokens,
    # + maxOutputTokens 495
    my $gbody = { systemInstruction => { parts => [{ text => 'z' x 8 }] },
        contents => [{ role => 'user', parts => [{ text => 'y' x 12 }] }],
        generationConfig => { maxOutputTokens => 495 } };
    is(gemini($tl, body => $gbody)->{status}, 200, 'Gemini: 500 of 1000');
    is(gemini($tl, body => $gbody)->{status}, 200, '1000 of 1000');
    my $g = gemini($tl, body => $gbody);
    is($g->{status}, 429, '1500 of 1000: 429');
    is($g->{json}{error}{status}, 'RESOURCE_EXHAUSTED', '... RESOURCE_EXHAUSTED');
    my ($qf) = grep { $_->{'@type'} =~ /QuotaFailure/ } @{ $g->{json}{error}{details} };
    like($qf->{violations}[0]{quotaId}, qr/InputTokens/, '... a token quota');
    is($qf->{violations}[0]{quotaValue}, 1000, '... of 1000');
    my ($ri) = grep { $_->{'@type'} =~ /RetryInfo/ } @{ $g->{json}{error}{details} };
    like($ri->{retryDelay}, qr/^\d+s$/, '... RetryInfo');
    ok(!exists $g->{headers}{'retry-after'}, '... and no header, as Google');

    my $tot = $tl->stats->{totals};
    is($tot->{over_limit_tokens}, 5, 'over_limit_tokens in total: 3 OpenAI, 1 Anthropic, 1 Gemini');
    is($tl->over_limit_tokens, 5, '... DR::Sim reads it');
    is($tot->{over_limit}, 0, 'over_limit stays 0');

    # over both limits: the requests' 429, counted under both
    my $both = DR::Sim->start(latency_ms => 0, rpm => 1, tpm => 500);
    is(chat($both, '/openai/v1/chat/completions', max_tokens => 400)->{status},
        200, 'rpm 1, tpm 500: the first is accepted');
    $r = chat($both, '/openai/v1/chat/completions', max_tokens => 400);
    is($r->{json}{error}{type}, 'requests', 'over both: the requests\' 429');
    my $bt = $both->stats->{totals};
    is_deeply([@$bt{qw(over_limit over_limit_tokens)}], [1, 1], '... counted under both');

    # POST /_sim/config sets them too
    $both->configure(rpm => 0, tpm => 300, tpm_provider => { xai => 0 });
    my $cfg = $both->stats->{config};
    is_deeply([@$cfg{qw(tpm tpm_provider)}], [300, { xai => 0 }], 'tpm by POST /_sim/config');
    is(chat($both, '/openai/v1/chat/completions', key => 'sk-fresh-key-1234',
        body => { model => 'gpt-4o-mini', max_tokens => 300,
            messages => [{ role => 'user', content => 'hi' }] })->{status},
        429, '... 301 of 300: 429');
    is(chat($both, '/xai/v1/chat/completions', model => 'grok-3-mini',
        max_tokens => 300)->{status}, 200, '... xai=0: no limit for xai');

    # a client that charges itself the same, in the same window, never
    # goes over
    my ($limit, $pwin) = (1000, 0.5);
    my $paced = DR::Sim->start(latency_ms => 0, tpm => $limit,
        window_s => $pwin);
    my (@ledger, @status);
    for my $i (1 .. 10) {
        my $chars = 100 + 37 * $i;
        my $need = int(($chars + 3) / 4) + 300;
        for (;;) {
            @ledger = grep { $_->[0] > time - $pwin - 0.01 } @ledger;
            my $used = 0;
            $used += $_->[1] for @ledger;
            last if $used + $need <= $limit;
            my $wait = $ledger[0][0] + $pwin + 0.01 - time;
            sleep $wait if $wait > 0;
        }
        push @status, chat($paced, '/openai/v1/chat/completions',
            body => { model => 'gpt-4o-mini', max_tokens => 300,
                messages => [{ role => 'user', content => 'p' x $chars }] })->{status};
        push @ledger, [time, $need];    # no earlier than it arrived
    }
    is_deeply([grep { $_ != 200 } @status], [], 'a client counting the same tokens gets only 200s');
    is($paced->over_limit_tokens, 0, '... and over_limit_tokens stays 0');
};

# --------------------------------------------------------------------------
subtest 'faults, one kind at a time' => sub {
    my %f;
    $f{$_} = DR::Sim->start(latency_ms => 0, faults => "$_=1", timeout_hold_s => 5)
        for qw(429 500 503 timeout reset malformed truncated html empty_choices
               no_usage bad_utf8 huge);
    my $o = sub { chat($f{ $_[0] }, '/openai/v1/chat/completions', @_[1 .. $#_]) };

    my $r = $o->('429');
    is($r->{status}, 429, '429: status');
    is($r->{json}{error}{code}, 'rate_limit_exceeded', '429: OpenAI error');
    like($r->{headers}{'retry-after'}, qr/^[12]$/, '429: Retry-After 1-2 s');
    $r = messages($f{429});
    is($r->{json}{error}{type}, 'rate_limit_error', '429: Anthropic error');
    my $st = $f{429}->stats->{totals};
    is($st->{faults}{429}, 2, '429: counted as a fault');
    is($st->{over_limit}, 0, '429: not over the limit (the client did nothing wrong)');

    $r = $o->('500');
    is($r->{status}, 500, '500: status');
    is($r->{json}{error}{type}, 'server_error', '500: OpenAI shape');
    $r = messages($f{500});
    is($r->{json}{error}{type}, 'api_error', '500: Anthropic shape');
    $r = gemini($f{500});
    is($r->{json}{error}{status}, 'INTERNAL', '500: Gemini shape');

    $r = $o->('503');
    is($r->{status}, 503, '503: OpenAI status');
    $r = messages($f{503});
    is($r->{status}, 529, '503: Anthropic answers 529');
    is($r->{json}{error}{type}, 'overloaded_error', '503: overloaded_error');
    $r = gemini($f{503});
    is($r->{json}{error}{status}, 'UNAVAILABLE', '503: Gemini UNAVAILABLE');

    my $t = time;
    $r = $o->('timeout', timeout => 1);
    is($r->{status}, 599, 'timeout: no answer');
    like($r->{content}, qr/timed out|timeout/i,
        'timeout: the client timed out, the connection held open');
    note(sprintf 'timeout: the client gave up after %.1f s', time - $t);
    is($f{timeout}->stats->{totals}{faults}{timeout}, 1, 'timeout: counted');

    $r = $o->('reset');
    is($r->{status}, 599, 'reset: no answer');
    unlike($r->{content}, qr/timed out/, 'reset: the connection is closed at once');

    $r = $o->('malformed');
    is($r->{status}, 200, 'malformed: 200');
    is($r->{headers}{'content-type'}, 'application/json', 'malformed: says JSON');
    ok(!defined $r->{json}, 'malformed: is not JSON');

    $r = $o->('truncated');
    is($r->{status}, 200, 'truncated: 200');
    is($r->{headers}{'content-length'}, length $r->{content},
        'truncated: Content-Length matches what is sent');
    ok(!defined $r->{json}, 'truncated: is not complete JSON');
    like($r->{content}, qr/^\{"/, 'truncated: the start of a JSON document');

    $r = $o->('html');
    is($r->{status}, 502, 'html: 502');
    like($r->{headers}{'content-type'}, qr{^text/html}, 'html: text/html');
    like($r->{content}, qr{<html>.*502 Bad Gateway}s, 'html: an error page');

    $r = $o->('empty_choices');
    is($r->{status}, 200, 'empty_choices: 200');
    is_deeply($r->{json}{choices}, [], 'empty_choices: choices []');
    is_deeply(messages($f{empty_choices})->{json}{content}, [], 'empty_choices: Anthropic content []');
    is_deeply(gemini($f{empty_choices})->{json}{candidates}, [], 'empty_choices: Gemini candidates []');

    $r = $o->('no_usage');
    ok($r->{json}{choices}[0]{message}{content} && !exists $r->{json}{usage},
        'no_usage: an answer without usage');
    ok(!exists messages($f{no_usage})->{json}{usage}, 'no_usage: Anthropic');
    ok(!exists gemini($f{no_usage})->{json}{usageMetadata}, 'no_usage: Gemini');

    $r = $o->('bad_utf8');
    is($r->{status}, 200, 'bad_utf8: 200');
    my $copy = $r->{content};
    ok(!utf8::decode($copy), 'bad_utf8: the body is not valid UTF-8');
    like($r->{content}, qr/\xFF/, 'bad_utf8: raw invalid bytes are sent');

    $r = $o->('huge', timeout => 30);
    is($r->{status}, 200, 'huge: 200');
    ok(length($r->{content}) >= 10 * 1024 * 1024,
        sprintf 'huge: a body of %.1f MB', length($r->{content}) / 1048576);
    ok($r->{json} && length $r->{json}{choices}[0]{message}{content} > 10_000_000,
        'huge: still valid JSON');

    $_->stop for values %f;
};

subtest 'faults are reproducible and a retry can succeed' => sub {
    my @runs;
    for (1 .. 2) {
        my $s = DR::Sim->start(latency_ms => 0, seed => 3, faults => '500=0.5');
        push @runs, [map { chat($s, '/openai/v1/chat/completions')->{status} } 1 .. 16];
    }
    is_deeply($runs[0], $runs[1], 'same seed and requests: same faults');
    ok((grep { $_ == 500 } @{ $runs[0] }) && (grep { $_ == 200 } @{ $runs[0] }),
        "the same body retried does not fail every time (@{ $runs[0] })");

    my $s = DR::Sim->start(latency_ms => 0, faults => 'anthropic:500=1');
    is(messages($s)->{status}, 500, 'a provider-scoped fault hits that provider');
    is(chat($s, '/openai/v1/chat/completions')->{status}, 200, '... and no other');

    my $file = "$dir/faults.txt";
    my $fs = DR::Sim->start(latency_ms => 0, faults_file => $file);
    is(chat($fs, '/openai/v1/chat/completions')->{status}, 200, 'no faults file: no faults');
    open my $fh, '>', $file or die;
    print $fh "503=1\n";
    close $fh;
    is(chat($fs, '/openai/v1/chat/completions')->{status}, 503, 'the faults file is re-read');
    $fs->configure(faults => '');
    unlink $file;
    is(chat($fs, '/openai/v1/chat/completions')->{status}, 200, '... and removing it stops them');
    $fs->configure(faults => 'html=1');
    is(chat($fs, '/openai/v1/chat/completions')->{status}, 502, 'POST /_sim/config changes faults');
};

# --------------------------------------------------------------------------
# Every request sent is answered once and the simulator lets go of each:
# its count in flight returns to 0.  How many it holds at once depends on
# how fast this machine delivers them: make bench reports it
# (bench/simulator.md); here it only has to be more than one.
subtest '2,000 requests at once: each answered, none left in flight' => sub {
    my $n = 2000;
    my $burst = sub {
        my ($latency, %o) = @_;
        my $c = DR::Sim->start(latency_ms => $latency, %o);
        my $ua = Mojo::UserAgent->new(connect_timeout => 120,
            request_timeout => 300, inactivity_timeout => 300);
        my $url = $c->url . '/openai/v1/chat/completions';
        my @req = map { [{ authorization => 'Bearer sk-load-key-' . ($_ % 10)
                . 'xyzw', 'content-type' => 'application/json' },
            encode_json({ model => 'gpt-4o-mini', messages => [{ role => 'user',
                content => prompt(business_analysis => "load$_.example") }] })]
        } 1 .. $n;
        my ($done, %status) = (0);
        my $t = time;
        for my $q (@req) {
            $ua->post($url => $q->[0] => $q->[1] => sub {
                $status{ $_[1]->res->code // 'error' }++;
                Mojo::IOLoop->stop if ++$done == $n;
            });
        }
        my $guard = Mojo::IOLoop->timer(600 => sub { Mojo::IOLoop->stop });
        Mojo::IOLoop->start;
        Mojo::IOLoop->remove($guard);
        my $el = time - $t;
        # an answer the client has is one the simulator let go of
        my $st;
        DR::Test::wait_for(sub {
            $st = $c->stats(recent => 0);
            $st->{totals}{in_flight} == 0;
        }, 60);
        $c->stop;
        return { el => $el, status => \%status, st => $st };
    };

    for my $case ([1 => 'one process'], [2 => '--workers 2']) {
        my ($workers, $name) = @$case;
        my $r = $burst->(1000, $workers > 1 ? (workers => $workers) : ());
        my $tot = $r->{st}{totals};
        is_deeply($r->{status}, { 200 => $n }, "$name: all $n answered 200");
        is($tot->{requests}, $n, "$name: each arrived once");
        is_deeply($tot->{status}, { 200 => $n }, "$name: each answered 200");
        is($tot->{in_flight}, 0, "$name: none left in flight");
        ok($tot->{max_in_flight} > 1 && $tot->{max_in_flight} <= $n,
            "$name: held at once, not one after another "
            . "($tot->{max_in_flight})");
        if ($workers > 1) {
            my $sum = 0;
            $sum += $_->{requests} for @{ $r->{st}{per_worker} };
            is($sum, $n, "$name: the workers' requests add up");
            ok(!$r->{st}{workers_late}, "$name: every worker counted");
        }
        note(sprintf '%s at 1000 ms: %d of %d held at once, %.2f s wall '
            . 'time', $name, $tot->{max_in_flight}, $n, $r->{el});
    }
};

# --------------------------------------------------------------------------
subtest '--workers: one socket, counters summed' => sub {
    my $state = "$dir/workers-state.json";
    # know_all: the answer is the same however often it is asked, and
    # whichever worker answers it
    my $w = DR::Sim->start(latency_ms => 300, workers => 2, know_all => 1,
        state_file => $state);
    my $n = 400;
    my $ua = Mojo::UserAgent->new(connect_timeout => 120,
        request_timeout => 300, inactivity_timeout => 300);
    my $url = $w->url . '/openai/v1/chat/completions';
    # the same body every time: ids drawn from it must still differ
    my $body = encode_json({ model => 'gpt-4o-mini', messages => [{
        role => 'user', content => prompt(business_analysis => 'stripe.com') }] });
    my ($done, %status, %ids, %text) = (0);
    for (1 .. $n) {
        $ua->post($url => { authorization => "Bearer $OKEY",
                'content-type' => 'application/json' } => $body => sub {
            my $res = $_[1]->res;
            $status{ $res->code // 'error' }++;
            my $j = eval { $res->json } // {};
            $ids{ $j->{id} // 'none' }++;
            $text{ $j->{choices}[0]{message}{content} // 'none' }++;
            Mojo::IOLoop->stop if ++$done == $n;
        });
    }
    my $guard = Mojo::IOLoop->timer(600 => sub { Mojo::IOLoop->stop });
    Mojo::IOLoop->start;
    Mojo::IOLoop->remove($guard);
    is_deeply(\%status, { 200 => $n }, "$n requests at once: all 200");
    is(scalar keys %ids, $n, '... each with its own id, whichever worker answered');
    is(scalar keys %text, 1, '... and the same answer from both workers');

    my $st;
    DR::Test::wait_for(sub {
        $st = $w->stats;
        $st->{totals}{in_flight} == 0;
    }, 60);
    is($st->{config}{workers}, 2, 'config: workers 2');
    is($st->{pid}, $w->pid, 'pid: the process started');
    is($st->{totals}{requests}, $n, 'requests summed over the workers');
    is($st->{totals}{status}{200}, $n, '... and statuses');
    is($st->{providers}{openai}{keys}{k1a2}{requests}, $n, '... and per key');
    is($st->{totals}{in_flight}, 0, 'none in flight');
    ok($st->{totals}{max_in_flight} > 1 && $st->{totals}{max_in_flight} <= $n,
        "max in flight is the simulator's: $st->{totals}{max_in_flight}");
    is(scalar @{ $st->{recent} }, $n, 'the recent requests of both');
    my @each = @{ $st->{per_worker} };
    is(scalar @each, 2, 'per_worker: two');
    my $sum = 0;
    $sum += $_->{requests} for @each;
    is($sum, $n, '... whose requests add up');
    my %pids = map { $_->{pid} => 1 } @each;
    ok(keys %pids == 2 && !$pids{ $w->pid }, '... two processes besides the first');
    note('requests per worker: ' . join ' ', map { $_->{requests} } @each);
    ok(!$st->{workers_late}, 'every worker answered in time');

    $w->reset;
    is($w->stats->{totals}{requests}, 0, 'POST /_sim/reset resets every worker');
    ok(!eval { $w->configure(faults => '500=1'); 1 }, 'POST /_sim/config is refused');
    like($@, qr/409/, '... with 409');

    chat($w, '/openai/v1/chat/completions') for 1 .. 3;
    my $pid = $w->pid;
    $w->stop;
    ok(!kill(0, $pid) && !grep({ kill 0, $_ } keys %pids), 'stop ends them all');
    open my $fh, '<', $state or die "$state: $!";
    my $sj = decode_json(do { local $/; <$fh> });
    is($sj->{totals}{requests}, 3, 'the state file holds the sum when stopped');
    is(scalar @{ $sj->{recent} }, 3, '... and the recent requests');
};

my $pid = $sim->pid;
$sim->stop;
ok(!kill(0, $pid), 'stop ends the simulator');
note(sprintf 'wall time %.1f s', time - $T0);
done_testing;

# tools/secret-scan (make secret-scan): the tree holds no secret; planted
# ones of every kind are found, each named by file, line and kind without
# being printed whole; keys that say they are fake pass.  The planted
# secrets are put together here at run time, so that this file holds
# none.

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

my $scan = "$FindBin::Bin/../tools/secret-scan";

sub scan {
    my ($dir) = @_;
    my $out = `$scan $dir 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = scan("$FindBin::Bin/..");
is($rc, 0, 'the tree holds no secret') or diag($out);
like($out, qr/no secret found/, 'and says so');

# a random-looking tail of the given length
sub tail {
    my ($n, @chars) = @_;
    @chars = ('A' .. 'Z', 'a' .. 'z', 0 .. 9) unless @chars;
    return join '', map { $chars[($_ * 7 + 3) % @chars] } 1 .. $n;
}

my %planted = (
    'private key'     => '-----BEGIN ' . 'RSA PRIVATE KEY-----',
    'OpenAI or Anthropic key' => 'sk-' . 'proj-' . tail(40),
    'xAI key'         => 'xai-' . tail(48),
    'Perplexity key'  => 'pplx-' . tail(40),
    'Google API key'  => 'AI' . 'za' . tail(35),
    'AWS access key'  => 'AK' . 'IA' . tail(16, 'A' .. 'Z', 2 .. 7),
    'GitHub token'    => 'gh' . 'p_' . tail(36),
    'Domain Runner key' => 'dr_' . tail(8, 'a' .. 'z', 0 .. 9) . '_'
        . tail(32),
    'password in a URL' => 'postgresql://app:' . 'Hq7' . tail(10)
        . '@db.internal/app',
    'password in a connection string' => 'host=db user=app pass'
        . 'word=Hq7' . tail(10),
);

my $dir = tempdir('dr-secret-scan-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $n = 0;
for my $kind (sort keys %planted) {
    $n++;
    open my $fh, '>', "$dir/file$n.conf" or die;
    print $fh "# line one\nvalue = \"$planted{$kind}\"\n";
    close $fh;
}

($rc, $out) = scan($dir);
is($rc, 1, 'planted secrets fail the scan');
$n = 0;
for my $kind (sort keys %planted) {
    $n++;
    like($out, qr/^file$n\.conf:2: \Q$kind\E \(/m, "found: $kind");
}
my @whole = grep { $out =~ /\Q$_\E/ } map { substr $_, 6 } values %planted;
ok(!@whole, 'and never prints one whole');

# what tests and examples hold: obviously fake
$dir = tempdir('dr-secret-scan-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $fh, '>', "$dir/fake.t" or die;
print $fh join "\n",
    q{$ENV{KEY} = 'sk-FAKE-not-a-key-0001-aaaaaaaaaaaaaaaa';},
    q{my $k = 'xai-' . 'x' x 40;},
    'xai-' . ('x' x 40),
    'AKIA' . ('0' x 16),
    'dr_abcdefgh_' . ('A' x 32),
    'dsn = postgresql://u:not-real-at-all@db.example.com/a',
    'dr_pg "host=/tmp password=sw0rdfish-not-real";',
    'base = http://127.0.0.1:8089@evil.example/',
    '';
close $fh;

($rc, $out) = scan($dir);
is($rc, 0, 'fake keys and passwords pass') or diag($out);

done_testing;

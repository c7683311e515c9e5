package DR::ExampleConf;

# The example configurations of conf/, adapted to a temporary directory so
# that "nginx -t" can check them on any machine:
#
#   my $x = DR::ExampleConf->new('production.conf',   # or a path
#       module => $so,                 # load_module of the module, or
#       snippet => $text);             # the package's modules-available file
#   my ($rc, $out) = $x->test;         # nginx -t
#   my $all = $x->dump;                # nginx -T
#   $x->dir; $x->conf; $x->secrets;   # what the fake secret files hold
#
# Paths under /etc/nginx/, /var/log/nginx/ and /run/ move into the
# directory; host names of the private network (*.internal) become
# localhost, since nginx resolves them when it reads the file.  The files
# the configuration names are made with fake content: a self-signed
# certificate (openssl), the key secret, the pgpass file, the database CA,
# one key file per provider, each readable by its owner only.

use strict;
use warnings;

use DR::Test;
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);

sub new {
    my ($class, $name, %opt) = @_;

    my $dir = tempdir('dr-conf-XXXXXX', TMPDIR => 1,
        CLEANUP => !$ENV{DR_KEEP});
    chmod 0711, $dir;
    my $self = bless { dir => $dir, name => $name, secrets => [] }, $class;

    my $file = $name =~ m{/} ? $name : "$DR::Test::TOP/conf/$name";
    open my $fh, '<', $file or die "$file: $!";
    my $text = do { local $/; <$fh> };
    close $fh;

    $text =~ s{/etc/nginx/}{$dir/etc/}g;
    $text =~ s{/var/log/nginx/}{$dir/log/}g;
    $text =~ s{/run/nginx\.pid}{$dir/nginx.pid}g;
    $text =~ s{\b[a-z0-9-]+\.internal\b}{localhost}g;

    make_path("$dir/etc/modules-enabled", "$dir/log", "$dir/etc/tls",
        "$dir/etc/dr/providers");
    copy('/etc/nginx/mime.types', "$dir/etc/mime.types") or die "copy: $!";

    # the module, enabled as the package enables it
    my $load = $opt{snippet} // ($opt{module} ? "load_module $opt{module};\n"
                                              : undef);
    if (defined $load) {
        open my $mfh, '>', "$dir/etc/modules-enabled/50-mod-http-dr.conf"
            or die;
        print $mfh $load;
        close $mfh;
    }

    # a throw-away certificate for the server and as the database's CA
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
        . "-subj /CN=api.example.com -keyout $dir/etc/tls/api.key "
        . "-out $dir/etc/tls/api.crt >/dev/null 2>&1") == 0
        or die 'openssl req failed';
    chmod 0600, "$dir/etc/tls/api.key";
    copy("$dir/etc/tls/api.crt", "$dir/etc/dr/pg-ca.crt") or die;

    my $fake = sub { join '', map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9)[rand 62] }
                     1 .. $_[0] };

    $self->secret("$dir/etc/dr/key_secret", 'fake-key-secret-' . $fake->(40));
    $self->secret("$dir/etc/dr/pgpass",
        '*:*:*:domain_runner:fake-db-password-' . $fake->(16));
    while ($text =~ /key_file=(\S+?);?\s/g) {
        $self->secret($1, "fake-provider-key-$_-" . $fake->(24))
            for 1 .. 2;
    }

    open my $out, '>', "$dir/nginx.conf" or die;
    print $out $text;
    close $out;

    $self->{conf} = "$dir/nginx.conf";
    $self->{text} = $text;
    return $self;
}

sub dir { $_[0]{dir} }
sub conf { $_[0]{conf} }
sub text { $_[0]{text} }
sub secrets { @{$_[0]{secrets}} }

# appends a line of fake secret to a file readable by its owner only
sub secret {
    my ($self, $path, $value) = @_;
    open my $fh, '>>', $path or die "$path: $!";
    print $fh "$value\n";
    close $fh;
    chmod 0600, $path;
    push @{$self->{secrets}}, $value;
}

# nginx -t or -T; under DR_ASAN with the sanitizers' runtime, as the
# harness runs it, and a report of theirs is a failure of the file
sub nginx {
    my ($self, $flag) = @_;
    local %ENV = (%ENV, DR::Test::sanitizer_env($self));
    my $out = `$DR::Test::CFG{nginx} $flag -p $self->{dir} -c $self->{conf} 2>&1`;
    my $rc = $? >> 8;
    my $reports = DR::Test::sanitizer_files($self);
    die "AddressSanitizer or UBSan reported:\n$reports" if $reports;
    return ($rc, $out);
}

sub test { $_[0]->nginx('-t') }
sub dump { ($_[0]->nginx('-T'))[1] }

1;

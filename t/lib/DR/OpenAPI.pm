package DR::OpenAPI;

# Checks an HTTP answer against the OpenAPI document of the public API,
# ngx_dr_module/openapi.json, with JSON::Validator (Debian's
# libjson-validator-perl):
#
#     use DR::OpenAPI;
#
#     my $r = $t->get('/api/rankings?limit=5');
#     DR::OpenAPI::response_ok('GET', '/api/rankings', $r->{status},
#         $r->{content}, 'rankings match the document');
#
#     my @errors = DR::OpenAPI::check('GET', '/api/drift/{domain}', 404,
#         $r->{json});
#
# The path is the template of the document ("/api/drift/{domain}"), not
# the URL asked.  The body is either the raw JSON text of the answer
# (best: the types are exactly those on the wire) or the structure it
# decodes to.  The response schemas forbid fields they do not list, so a
# renamed, missing or extra field, a wrong type, an enum value or a
# pattern that does not match are all errors.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use JSON::Validator::Schema::Draft201909;
use Mojo::File;
use Mojo::JSON qw(decode_json);
use Test::More ();

our $FILE = $ENV{DR_OPENAPI}
    // abs_path(dirname(__FILE__) . '/../../..') . '/ngx_dr_module/openapi.json';

my ($doc, $validator);


# the decoded document (loaded once)

sub document {
    $doc //= decode_json(Mojo::File->new($FILE)->slurp);
    return $doc;
}


# the schema validator over the whole document, so that "$ref" into
# components resolves; the document's schemas are JSON Schema 2020-12,
# of which the 2019-09 implementation covers every keyword it uses
# (no $dynamicRef, no prefixItems)

sub validator {
    $validator //= JSON::Validator::Schema::Draft201909->new(document());
    return $validator;
}


# every operation as [METHOD, template], in the document's order of paths

sub operations {
    my $paths = document()->{paths};
    my @ops;

    for my $path (sort keys %$paths) {
        for my $m (qw(get put post delete options head patch trace)) {
            push @ops, [uc $m, $path] if $paths->{$path}{$m};
        }
    }

    return @ops;
}


# follows "$ref"s to components until a real object

sub deref {
    my ($node) = @_;

    for (1 .. 16) {
        return $node unless ref $node eq 'HASH' && defined $node->{'$ref'};

        my $ref = $node->{'$ref'};
        croak "unsupported \$ref $ref" unless $ref =~ s{^#/}{};

        $node = document();
        for my $k (split m{/}, $ref) {
            $k =~ s/~1/\//g;
            $k =~ s/~0/~/g;
            $node = ref $node eq 'HASH' ? $node->{$k} : undef;
        }
        croak "unresolved \$ref #/$ref" unless defined $node;
    }

    croak 'a $ref loop';
}


# the response object of an operation for a status, or an error string

sub response {
    my ($method, $path, $status) = @_;

    my $item = document()->{paths}{$path}
        or return (undef, "$path is not a path of openapi.json");
    my $op = $item->{lc $method}
        or return (undef, "$method $path is not an operation of openapi.json");

    my $responses = $op->{responses} // {};
    my $r = $responses->{$status}
        // $responses->{substr($status, 0, 1) . 'XX'}
        // $responses->{default}
        or return (undef, "$method $path does not document status $status"
                          . ' (documented: '
                          . join(', ', sort keys %$responses) . ')');

    return (deref($r), undef);
}


# the JSON schema of an answer's body, or an error string

sub body_schema {
    my ($method, $path, $status) = @_;

    my ($r, $err) = response($method, $path, $status);
    return (undef, $err) if $err;

    my $media = $r->{content}{'application/json'}
        or return (undef, "$method $path $status has no application/json "
                          . 'body in openapi.json');

    return ($media->{schema}, undef);
}


# the list of what is wrong with the answer; empty when it matches

sub check {
    my ($method, $path, $status, $body) = @_;

    my ($schema, $err) = body_schema($method, $path, $status);
    return ($err) if $err;

    my $data = $body;

    if (!ref $body) {
        return ("$method $path $status: no body") unless defined $body;

        $data = eval { decode_json($body) };
        return ("$method $path $status: the body is not JSON: "
                . ($@ =~ s/ at \S+ line \d+.*//sr)) if $@;
    }

    return map { "$method $path $status: $_" }
           validator()->validate($data, $schema);
}


# a test: ok when the answer matches, with the errors as diagnostics

sub response_ok {
    my ($method, $path, $status, $body, $name) = @_;

    my @errors = check($method, $path, $status, $body);

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    Test::More::ok(!@errors,
        $name // "$method $path $status matches openapi.json")
        or Test::More::diag(join "\n", @errors);

    return !@errors;
}


# the response headers the document requires for this answer (names as
# written there), for tests that check headers too

sub required_headers {
    my ($method, $path, $status) = @_;

    my ($r, $err) = response($method, $path, $status);
    croak $err if $err;

    my $h = $r->{headers} // {};
    return grep { deref($h->{$_})->{required} } sort keys %$h;
}


1;

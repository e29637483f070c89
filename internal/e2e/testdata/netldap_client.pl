#!/usr/bin/perl
# An LDAP client written with Perl's Net::LDAP (its own BER encoder, not
# libldap's), as Perl tools and SSO servers use it: many requests in flight on
# one connection (asynchronous mode), paging, sorting, virtual list views,
# assertions, pre- and post-read controls, abandon.
#
# Usage: netldap_client.pl URI SCENARIO [ARGS...]; prints a JSON transcript of
# every request and what came back (entries, result codes, diagnostic
# messages, matched DNs, response controls), for the test to compare between
# a direct connection and one through ldapmux.
#
# Scenarios:
#   reader USER_DN PASSWORD PEOPLE_DN
#   writer WRITER_DN PASSWORD SCRATCH_DN USER_DN USER_PASSWORD
use strict;
use warnings;
use JSON::PP;
use Net::LDAP;
use Net::LDAP::Constant qw(LDAP_CONTROL_PAGED LDAP_CONTROL_VLVRESPONSE LDAP_CONTROL_SORTRESULT LDAP_CONTROL_POSTREAD LDAP_CONTROL_PREREAD);
use Net::LDAP::Control::Assertion;
use Net::LDAP::Control::Paged;
use Net::LDAP::Control::PostRead;
use Net::LDAP::Control::PreRead;
use Net::LDAP::Control::Sort;
use Net::LDAP::Control::VLV;
use Net::LDAP::Extension::SetPassword;
use Net::LDAP::Extension::WhoAmI;

my ($uri, $scenario, @args) = @ARGV;
my @steps;

sub connect_as {
    my ($dn, $password) = @_;
    my $ldap = Net::LDAP->new($uri, timeout => 20, async => 1, onerror => undef) or die "connect $uri: $@";
    if (defined $dn) {
        my $m = $ldap->bind($dn, password => $password);
        $m->sync;
        die "bind $dn: " . $m->error if $m->code;
    }
    return $ldap;
}

sub entries {
    my ($msg) = @_;
    my @out;
    for my $e ($msg->entries) {
        my %attrs;
        for my $a ($e->attributes) {
            $attrs{lc $a} = [sort $e->get_value($a)];
        }
        push @out, [$e->dn, \%attrs];
    }
    push @out, ['referral', [$msg->references]] if $msg->references;
    return \@out;
}

sub result {
    my ($msg, %extra) = @_;
    $msg->sync;
    return {code => $msg->code, error => $msg->error_text ne '' ? $msg->error : '', matched => $msg->dn // '', %extra};
}

sub step {
    my ($name, $answer) = @_;
    push @steps, [$name, $answer];
}

sub read_entry {
    my ($ldap, $dn, @attrs) = @_;
    my $m = $ldap->search(base => $dn, scope => 'base', filter => '(objectClass=*)', attrs => \@attrs);
    return result($m, entries => entries($m));
}

sub reader {
    my ($user, $password, $people) = @_;
    my $ldap = connect_as($user, $password);

    # Twenty searches, a compare and "Who am I?" in flight at once on one
    # connection, answered in any order, read back in the order sent.
    my @inflight = map {
        my $n = $_;
        $ldap->search(base => $people, scope => 'one', filter => "(uid=user.$n)", attrs => ['uid', 'cn', 'mail']);
    } 1 .. 20;
    my $cmp = $ldap->compare($user, attr => 'objectClass', value => 'inetOrgPerson');
    my $who = $ldap->who_am_i;
    for my $i (0 .. $#inflight) {
        step("pipelined search $i", result($inflight[$i], entries => entries($inflight[$i])));
    }
    step('pipelined compare', result($cmp));
    $who->sync;
    step('pipelined who am I', {code => $who->code, response => $who->response // ''});

    my $page = Net::LDAP::Control::Paged->new(size => 7);
    my @pages;
    while (1) {
        my $m = $ldap->search(base => $people, scope => 'one', filter => '(objectClass=inetOrgPerson)', attrs => ['uid'], control => [$page]);
        my $r = result($m);
        push @pages, [$r->{code}, scalar $m->entries];
        last if $r->{code};
        my ($resp) = $m->control(LDAP_CONTROL_PAGED) or last;
        my $cookie = $resp->cookie;
        last unless defined $cookie && length $cookie;
        $page->cookie($cookie);
    }
    step('paged search', \@pages);

    my $sort = Net::LDAP::Control::Sort->new(order => '-cn:caseIgnoreOrderingMatch');
    my $m = $ldap->search(base => $people, scope => 'one', filter => '(uid=user.1*)', attrs => ['cn'], control => [$sort]);
    $m->sync;
    my ($sorted) = $m->control(LDAP_CONTROL_SORTRESULT);
    step('sorted', result($m, entries => entries($m), sort_result => $sorted ? $sorted->result : undef));

    my $vlv = Net::LDAP::Control::VLV->new(before => 1, after => 3, offset => 5, content => 0);
    $m = $ldap->search(base => $people, scope => 'one', filter => '(objectClass=inetOrgPerson)', attrs => ['uid'],
        control => [Net::LDAP::Control::Sort->new(order => 'cn:caseIgnoreOrderingMatch'), $vlv]);
    $m->sync;
    my ($vresp) = $m->control(LDAP_CONTROL_VLVRESPONSE);
    step('virtual list view', result($m, entries => entries($m), vlv => $vresp ? [$vresp->target, $vresp->content, $vresp->result] : undef));

    $m = $ldap->search(base => $people, scope => 'one', filter => '(objectClass=inetOrgPerson)', attrs => ['uid'], sizelimit => 4);
    step('size limit', result($m, count => scalar $m->entries));

    $m = $ldap->search(base => "ou=missing,$people", scope => 'base', filter => '(objectClass=*)');
    step('missing base', result($m));

    my $assert = Net::LDAP::Control::Assertion->new(assertion => '(uid=nobody)');
    $m = $ldap->search(base => $user, scope => 'base', filter => '(objectClass=*)', control => [$assert]);
    step('failed assertion', result($m));

    # A search abandoned as soon as it is sent: the connection goes on.
    # Whether any of its entries came first depends on timing, directly
    # too, and the search never ends once abandoned: it is not waited for.
    my $abandoned = $ldap->search(base => $people, scope => 'sub', filter => '(objectClass=*)', attrs => ['uid']);
    $abandoned->abandon;
    step('after an abandon', read_entry($ldap, $user, 'uid'));

    my $bad = Net::LDAP->new($uri, timeout => 20, onerror => undef);
    step('wrong password', result($bad->bind($user, password => "$password-wrong")));
    $bad->unbind;
    $ldap->unbind;
}

sub writer {
    my ($writer, $password, $scratch, $user, $user_password) = @_;
    my $ldap = connect_as($writer, $password);
    my $dn = "cn=netldap-entry,$scratch";
    step('add', result($ldap->add($dn, attrs => [objectClass => 'organizationalRole', cn => 'netldap-entry', description => 'made by Net::LDAP'])));
    step('add again', result($ldap->add($dn, attrs => [objectClass => 'organizationalRole', cn => 'netldap-entry'])));

    my $post = Net::LDAP::Control::PostRead->new(attrs => ['description']);
    my $pre = Net::LDAP::Control::PreRead->new(attrs => ['description']);
    my $m = $ldap->modify($dn, replace => {description => 'changed'}, control => [$pre, $post]);
    $m->sync;
    my ($before) = $m->control(LDAP_CONTROL_PREREAD);
    my ($after) = $m->control(LDAP_CONTROL_POSTREAD);
    step('modify with pre- and post-read', result($m,
        before => $before ? [$before->entry->get_value('description')] : undef,
        after => $after ? [$after->entry->get_value('description')] : undef));

    my $assert = Net::LDAP::Control::Assertion->new(assertion => '(description=not this)');
    step('modify under a failed assertion', result($ldap->modify($dn, replace => {description => 'never'}, control => [$assert])));
    step('modify against the schema', result($ldap->modify($dn, add => {mail => 'no@example.com'})));
    step('rename', result($ldap->moddn($dn, newrdn => 'cn=netldap-renamed', deleteoldrdn => 1)));
    step('read renamed', read_entry($ldap, "cn=netldap-renamed,$scratch", 'cn', 'description', 'creatorsName', 'modifiersName'));
    step('modify someone else', result($ldap->modify($user, replace => {mail => 'taken@example.com'})));
    step('delete', result($ldap->delete("cn=netldap-renamed,$scratch")));
    step('delete again', result($ldap->delete("cn=netldap-renamed,$scratch")));
    $ldap->unbind;

    # A user changes its own password, binds with it, and changes it back.
    my $self = connect_as($user, $user_password);
    $m = $self->set_password(oldpasswd => $user_password, newpasswd => "$user_password-new");
    step('set own password', result($m));
    my $again = Net::LDAP->new($uri, timeout => 20, onerror => undef);
    step('bind with the new password', result($again->bind($user, password => "$user_password-new")));
    step('set it back', result($again->set_password(oldpasswd => "$user_password-new", newpasswd => $user_password)));
    $again->unbind;
    $self->unbind;
}

if ($scenario eq 'reader') {
    reader(@args);
} elsif ($scenario eq 'writer') {
    writer(@args);
} else {
    die "unknown scenario $scenario\n";
}
print JSON::PP->new->canonical->encode(\@steps), "\n";

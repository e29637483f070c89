"""An LDAP client written with python-ldap, as applications write them.

Usage: pyldap_client.py URI SCENARIO [ARGS...]; prints a JSON transcript of
every request and what came back (entries, result codes, diagnostic
messages, response controls), for the test to compare between a direct
connection and one through ldapmux.

Scenarios:
  reader USER_DN PASSWORD PEOPLE_DN  binds, reads, pages, sorts, compares,
                                     pipelines requests behind a bind
  writer WRITER_DN PASSWORD SCRATCH_DN USER_DN USER_PASSWORD
                                     adds, modifies (with a post-read
                                     control), renames, deletes; refused
                                     writes; the password modify operation
  sync USER_DN PASSWORD SCRATCH_DN WRITER_DN WRITER_PASSWORD TAG
                                     a syncrepl consumer: refresh, then the
                                     changes the writer makes while its
                                     search stays open
"""

import json
import sys
import time

import ldap
import ldap.syncrepl
from ldap.controls import SimplePagedResultsControl
from ldap.controls.readentry import PostReadControl
from ldap.controls.sss import SSSRequestControl

from transcript import Transcript

TIMEOUT = 20


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def entries(results):
    """Search results as [dn, {attr: sorted values}], in the order received."""
    out = []
    for dn, attrs in results:
        if dn is None:  # a referral continuation
            out.append(["referral", [text(v) for v in attrs]])
            continue
        out.append([dn, {k.lower(): sorted(text(v) for v in vs) for k, vs in attrs.items()}])
    return out


def error(e):
    info = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
    return {
        "error": type(e).__name__,
        "result": info.get("result"),
        "info": text(info.get("info", "")),
        "matched": text(info.get("matched", "")),
    }


def transcript():
    return Transcript(ldap.LDAPError, error)


def connect(uri):
    conn = ldap.initialize(uri)
    conn.protocol_version = ldap.VERSION3
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, TIMEOUT)
    conn.timeout = TIMEOUT
    return conn


def paged(conn, base, filt, attrs, size):
    """Pages through a search; returns the pages' sizes and the entries."""
    control = SimplePagedResultsControl(True, size=size, cookie=b"")
    pages, found = [], []
    while True:
        msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, filt, attrs, serverctrls=[control])
        _, data, _, ctrls = conn.result3(msgid, timeout=TIMEOUT)
        pages.append(len(data))
        found.extend(entries(data))
        cookies = [c.cookie for c in ctrls if c.controlType == SimplePagedResultsControl.controlType]
        if not cookies or not cookies[0]:
            return {"pages": pages, "entries": found}
        control.cookie = cookies[0]


def partial(conn, base, filt, attrs, sizelimit):
    """A search over its size limit: the entries before the limit and the error."""
    msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, filt, attrs, sizelimit=sizelimit)
    got = []
    try:
        while True:
            rtype, data = conn.result(msgid, all=0, timeout=TIMEOUT)
            got.extend(entries(data))
            if rtype == ldap.RES_SEARCH_RESULT:
                return {"entries": len(got), "result": "success"}
    except ldap.SIZELIMIT_EXCEEDED as e:
        return {"entries": len(got), "result": error(e)}


def reader(uri, user, password, people):
    t = transcript()
    conn = connect(uri)
    t.run("anonymous whoami", conn.whoami_s)
    t.run("anonymous search", lambda: entries(conn.search_s(
        people, ldap.SCOPE_ONELEVEL, "(uid=user.1*)", ["cn", "mail", "uid"])))
    t.run("wrong password", lambda: conn.simple_bind_s(user, "not-" + password))
    t.run("whoami after failed bind", conn.whoami_s)
    t.run("bind", lambda: conn.simple_bind_s(user, password)[0])
    t.run("whoami", conn.whoami_s)
    t.run("own entry", lambda: entries(conn.search_s(user, ldap.SCOPE_BASE, attrlist=["*", "+"])))
    t.run("search as user", lambda: entries(conn.search_s(
        people, ldap.SCOPE_ONELEVEL, "(uid=user.1*)", ["cn", "mail", "uid"])))
    t.run("paged search", lambda: paged(conn, people, "(objectClass=inetOrgPerson)", ["uid"], 7))
    t.run("sorted search", lambda: [e[0] for e in entries(conn.search_ext_s(
        people, ldap.SCOPE_ONELEVEL, "(uid=user.*)", ["uid"],
        serverctrls=[SSSRequestControl(True, ["-cn:caseIgnoreOrderingMatch"])]))])
    t.run("size limit", lambda: partial(conn, people, "(objectClass=inetOrgPerson)", ["uid"], 5))
    t.run("compare true", lambda: conn.compare_s(user, "objectClass", b"inetOrgPerson"))
    t.run("compare false", lambda: conn.compare_s(user, "objectClass", b"device"))
    t.run("compare missing entry", lambda: conn.compare_s("uid=nobody," + people, "cn", b"x"))
    t.run("missing base", lambda: conn.search_s("uid=nobody," + people, ldap.SCOPE_BASE))
    t.run("bad filter attribute", lambda: entries(conn.search_s(people, ldap.SCOPE_ONELEVEL, "(noSuchAttribute=1)")))
    t.run("password refused to read", lambda: entries(conn.search_s(
        people, ldap.SCOPE_ONELEVEL, "(uid=user.2)", ["userPassword", "uid"])))

    # What applications do at start: bind and send requests at once, without
    # waiting for the bind's result; then read the answers in any order.
    again = connect(uri)
    bind_id = again.simple_bind(user, password)
    ids = [again.search_ext(people, ldap.SCOPE_ONELEVEL, "(uid=user.%d)" % n, ["uid", "mail"]) for n in range(1, 6)]
    who_id = again.extop(ldap.extop.ExtendedRequest("1.3.6.1.4.1.4203.1.11.3", None))
    answers = []
    for msgid in reversed(ids):
        answers.append(entries(again.result3(msgid, timeout=TIMEOUT)[1]))
    t.steps.append(["pipelined searches behind a bind", answers])
    t.run("pipelined whoami", lambda: text(again.extop_result(who_id, timeout=TIMEOUT)[1]))
    t.run("pipelined bind result", lambda: again.result3(bind_id, timeout=TIMEOUT)[0])
    again.unbind_s()

    # A search abandoned halfway leaves the connection usable.
    big = conn.search_ext(people, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["uid"])
    conn.abandon(big)
    t.run("after abandon", conn.whoami_s)
    t.run("rebind anonymously", lambda: conn.simple_bind_s("", "")[0])
    t.run("anonymous again", conn.whoami_s)
    conn.unbind_s()
    return t.steps


def writer(uri, writer_dn, password, scratch, user, user_password):
    t = transcript()
    conn = connect(uri)
    conn.simple_bind_s(writer_dn, password)
    dn = "cn=pyldap-entry," + scratch
    t.run("add", lambda: conn.add_s(dn, [
        ("objectClass", [b"organizationalRole"]), ("cn", [b"pyldap-entry"]),
        ("description", [b"added by python-ldap"])])[0])
    t.run("add again", lambda: conn.add_s(dn, [("objectClass", [b"organizationalRole"]), ("cn", [b"pyldap-entry"])]))

    def modify_with_post_read():
        post = PostReadControl(True, ["description"])
        msgid = conn.modify_ext(dn, [(ldap.MOD_REPLACE, "description", [b"changed", b"twice"])], serverctrls=[post])
        rtype, _, _, ctrls = conn.result3(msgid, timeout=TIMEOUT)
        read = [c for c in ctrls if c.controlType == PostReadControl.controlType]
        return {"type": rtype, "post-read": [[c.dn, {k: sorted(text(v) for v in vs) for k, vs in c.entry.items()}] for c in read]}

    t.run("modify with post-read", modify_with_post_read)
    t.run("compare after modify", lambda: conn.compare_s(dn, "description", b"twice"))
    t.run("modify a missing attribute", lambda: conn.modify_s(dn, [(ldap.MOD_DELETE, "telephoneNumber", None)]))
    t.run("rename", lambda: conn.rename_s(dn, "cn=pyldap-renamed", delold=1)[0])
    renamed = "cn=pyldap-renamed," + scratch
    t.run("read renamed", lambda: entries(conn.search_s(renamed, ldap.SCOPE_BASE, attrlist=["cn", "description"])))
    t.run("delete", lambda: conn.delete_s(renamed)[0])
    t.run("delete again", lambda: conn.delete_s(renamed))

    as_user = connect(uri)
    as_user.simple_bind_s(user, user_password)
    t.run("user may not add", lambda: as_user.add_s("cn=not-allowed," + scratch, [
        ("objectClass", [b"organizationalRole"]), ("cn", [b"not-allowed"])]))
    t.run("user modifies own entry", lambda: as_user.modify_s(user, [(ldap.MOD_REPLACE, "description", [b"set by python-ldap"])])[0])
    t.run("user may not modify another", lambda: as_user.modify_s(writer_dn, [(ldap.MOD_REPLACE, "description", [b"x"])]))
    t.run("password modify", lambda: as_user.passwd_s(user, user_password, "py-" + user_password)[0])
    t.run("bind with new password", lambda: connect(uri).simple_bind_s(user, "py-" + user_password)[0])
    t.run("old password refused", lambda: connect(uri).simple_bind_s(user, user_password))
    t.run("password back", lambda: as_user.passwd_s(user, "py-" + user_password, user_password)[0])
    t.run("user clears description", lambda: as_user.modify_s(user, [(ldap.MOD_DELETE, "description", None)])[0])
    as_user.unbind_s()
    conn.unbind_s()
    return t.steps


class Consumer(ldap.ldapobject.SimpleLDAPObject, ldap.syncrepl.SyncreplConsumer):
    """A syncrepl consumer (RFC 4533) as caches and directory tools write one:
    it keeps what it was sent, by entryUUID, and the events in order."""

    def __init__(self, uri, tag):
        super().__init__(uri)
        self.tag, self.events, self.dns, self.cookie = tag, [], {}, None
        self.refreshed = False

    def named(self, dn):
        return dn.replace(self.tag, "TAG")

    def syncrepl_get_cookie(self):
        return self.cookie

    def syncrepl_set_cookie(self, cookie):
        self.cookie = cookie

    def syncrepl_entry(self, dn, attrs, uuid):
        self.dns[uuid] = dn
        self.events.append(["entry", self.named(dn), {k.lower(): sorted(self.named(text(v)) for v in vs)
                                                     for k, vs in attrs.items() if k.lower() in ("cn", "description")}])

    def syncrepl_delete(self, uuids):
        for uuid in uuids:
            self.events.append(["delete", self.named(self.dns.get(uuid, "unknown"))])

    def syncrepl_present(self, uuids, refreshDeletes=False):
        if uuids is None:
            self.events.append(["present", "all" if not refreshDeletes else "all deleted"])

    def syncrepl_refreshdone(self):
        self.refreshed = True
        self.events.append(["refresh done"])


def sync(uri, user, password, scratch, writer_dn, writer_password, tag):
    """Entries written, then a refreshAndPersist search that stays open while
    they change: what the consumer is sent, in order."""
    t = transcript()
    writer_conn = connect(uri)
    writer_conn.simple_bind_s(writer_dn, writer_password)

    def role(n):
        return "cn=sync-%s-%d,%s" % (tag, n, scratch)

    for n in (1, 2):
        writer_conn.add_s(role(n), [("objectClass", [b"organizationalRole"]), ("cn", [("sync-%s-%d" % (tag, n)).encode()]),
                                    ("description", [b"before"])])
    consumer = Consumer(uri, tag)
    consumer.protocol_version = ldap.VERSION3
    consumer.timeout = TIMEOUT
    consumer.simple_bind_s(user, password)
    msgid = consumer.syncrepl_search(scratch, ldap.SCOPE_ONELEVEL, mode="refreshAndPersist",
                                     filterstr="(cn=sync-%s-*)" % tag, attrlist=["cn", "description"])

    def poll_until(done):
        deadline = time.monotonic() + TIMEOUT
        while not done() and time.monotonic() < deadline:
            consumer.syncrepl_poll(msgid=msgid, timeout=1)
        return done()

    t.steps.append(["refreshed", poll_until(lambda: consumer.refreshed)])
    seen = len(consumer.events)
    writer_conn.add_s(role(3), [("objectClass", [b"organizationalRole"]), ("cn", [("sync-%s-3" % tag).encode()])])
    writer_conn.modify_s(role(1), [(ldap.MOD_REPLACE, "description", [b"after"])])
    writer_conn.delete_s(role(2))
    t.steps.append(["changes sent", poll_until(lambda: len(consumer.events) >= seen + 3)])
    consumer.abandon(msgid)
    t.run("after the search", lambda: consumer.whoami_s().replace(tag, "TAG"))
    t.steps.append(["events", consumer.events])
    consumer.unbind_s()
    for n in (1, 3):
        writer_conn.delete_s(role(n))
    writer_conn.unbind_s()
    return t.steps


def main():
    uri, scenario, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    steps = {"reader": reader, "writer": writer, "sync": sync}[scenario](uri, *args)
    json.dump(steps, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

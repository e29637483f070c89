"""An LDAP client written with ldap3, the pure-Python library (its own BER
encoder, not libldap's), as Python applications use it: synchronous calls,
an asynchronous connection with several searches in flight, paged searches
through its generator, extended operations.

Usage: ldap3_client.py URI SCENARIO [ARGS...]; prints a JSON transcript of
every request and what came back (entries, result codes, diagnostic
messages, matched DNs), for the test to compare between a direct connection
and one through ldapmux.

Scenarios:
  reader USER_DN PASSWORD PEOPLE_DN
  writer WRITER_DN PASSWORD SCRATCH_DN USER_DN USER_PASSWORD
"""

import json
import sys

import ldap3
from ldap3.core.exceptions import LDAPException

from transcript import Transcript

TIMEOUT = 20


def connect(uri, user=None, password=None, strategy=ldap3.SYNC):
    server = ldap3.Server(uri, get_info=ldap3.NONE, connect_timeout=TIMEOUT)
    conn = ldap3.Connection(server, user=user, password=password, client_strategy=strategy,
                            receive_timeout=TIMEOUT, raise_exceptions=False, read_only=False)
    conn.open()
    return conn


def result(conn, ok=None):
    r = conn.result or {}
    return {"ok": ok, "result": r.get("result"), "description": r.get("description"),
            "message": r.get("message"), "matched": r.get("dn")}


def entries(conn):
    out = []
    for e in conn.response or []:
        if e.get("type") != "searchResEntry":
            out.append([e.get("type"), e.get("uri")])
            continue
        attrs = {k.lower(): sorted(v.decode("utf-8", "replace") for v in vs) for k, vs in e["raw_attributes"].items()}
        out.append([e["dn"], attrs])
    return out


def transcript():
    return Transcript(LDAPException, lambda e: {"exception": type(e).__name__})


def search(conn, base, scope, filt, attrs, **kw):
    ok = conn.search(base, filt, search_scope=scope, attributes=attrs, **kw)
    return {"result": result(conn, ok), "entries": entries(conn)}


def reader(uri, user, password, people):
    t = transcript()
    anon = connect(uri)
    t.run("anonymous bind", lambda: anon.bind())
    t.run("anonymous who am I", lambda: anon.extend.standard.who_am_i())
    t.run("anonymous search", lambda: search(anon, people, ldap3.LEVEL, "(uid=user.1*)", ["cn", "mail", "uid"]))
    anon.unbind()

    bad = connect(uri, user, password + "-wrong")
    t.run("wrong password", lambda: [bad.bind(), result(bad)])
    bad.unbind()

    conn = connect(uri, user, password)
    t.run("bind", lambda: [conn.bind(), result(conn)])
    t.run("who am I", lambda: conn.extend.standard.who_am_i())
    t.run("search", lambda: search(conn, people, ldap3.LEVEL, "(&(objectClass=inetOrgPerson)(uid=user.2*))", ["cn", "mail"]))
    t.run("paged search", lambda: sorted(str(e["dn"]) for e in conn.extend.standard.paged_search(
        people, "(objectClass=inetOrgPerson)", search_scope=ldap3.LEVEL, attributes=["uid"], paged_size=7, generator=False)))
    t.run("size limit", lambda: search(conn, people, ldap3.LEVEL, "(objectClass=inetOrgPerson)", ["uid"], size_limit=3))
    t.run("compare true", lambda: [conn.compare(user, "objectClass", "inetOrgPerson"), result(conn)])
    t.run("compare false", lambda: [conn.compare(user, "objectClass", "device"), result(conn)])
    t.run("missing base", lambda: search(conn, "uid=nobody," + people, ldap3.BASE, "(objectClass=*)", ["cn"]))
    t.run("substring and approximate filters", lambda: search(
        conn, people, ldap3.LEVEL, "(|(cn=User 1*)(sn~=3))", ["uid"]))
    t.run("extensible match filter", lambda: search(
        conn, people, ldap3.LEVEL, "(uid:caseExactMatch:=user.4)", ["uid"]))
    t.run("attribute options and all operational", lambda: search(
        conn, user, ldap3.BASE, "(objectClass=*)", ["cn;lang-en", "uid", "entryDN"]))
    conn.unbind()

    # An asynchronous connection: ten searches sent at once, answers read
    # back in the reverse order.
    conc = connect(uri, user, password, strategy=ldap3.ASYNC)
    conc.bind()
    ids = [conc.search(people, "(uid=user.%d)" % n, search_scope=ldap3.LEVEL, attributes=["uid", "mail"])
           for n in range(1, 11)]
    answers = []
    for msgid in reversed(ids):
        response, res = conc.get_response(msgid, timeout=TIMEOUT)
        answers.append([res["result"], sorted(str(e["dn"]) for e in response if e.get("type") == "searchResEntry")])
    t.steps.append(["searches in flight at once", answers])
    conc.unbind()
    return t.steps


def writer(uri, writer_dn, password, scratch, user, user_password):
    t = transcript()
    conn = connect(uri, writer_dn, password)
    conn.bind()
    dn = "cn=ldap3-entry," + scratch
    t.run("add", lambda: [conn.add(dn, ["organizationalRole"], {"cn": "ldap3-entry", "description": "made by ldap3"}),
                          result(conn)])
    t.run("add again", lambda: [conn.add(dn, ["organizationalRole"], {"cn": "ldap3-entry"}), result(conn)])
    t.run("modify", lambda: [conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["changed", "twice"])]}),
                             result(conn)])
    t.run("modify against the schema", lambda: [conn.modify(dn, {"mail": [(ldap3.MODIFY_ADD, ["x@example.com"])]}),
                                                result(conn)])
    t.run("rename", lambda: [conn.modify_dn(dn, "cn=ldap3-renamed"), result(conn)])
    renamed = "cn=ldap3-renamed," + scratch
    t.run("read renamed", lambda: search(conn, renamed, ldap3.BASE, "(objectClass=*)",
                                        ["cn", "description", "creatorsName", "modifiersName"]))
    t.run("delete", lambda: [conn.delete(renamed), result(conn)])
    t.run("delete again", lambda: [conn.delete(renamed), result(conn)])
    t.run("modify someone else", lambda: [conn.modify(user, {"mail": [(ldap3.MODIFY_REPLACE, ["taken@example.com"])]}),
                                          result(conn)])
    conn.unbind()

    me = connect(uri, user, user_password)
    me.bind()
    t.run("change own password", lambda: [me.extend.standard.modify_password(user, user_password, "l3-" + user_password),
                                          result(me)])
    again = connect(uri, user, "l3-" + user_password)
    t.run("bind with the new password", lambda: [again.bind(), result(again)])
    t.run("change it back", lambda: [again.extend.standard.modify_password(user, "l3-" + user_password, user_password),
                                     result(again)])
    again.unbind()
    me.unbind()
    return t.steps


def main():
    uri, scenario, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    steps = {"reader": reader, "writer": writer}[scenario](uri, *args)
    json.dump(steps, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()

// An LDAP client written with Java's JNDI, as Java applications (SSO servers,
// application servers, Spring LDAP) use it: pooled connections, referrals
// ignored (JNDI then sends the ManageDsaIT control with every request),
// paged and sorted searches, compares written as base searches, extended
// operations.
//
// Usage: java JndiClient.java URI SCENARIO [ARGS...]; prints a JSON
// transcript of every request and what came back (entries, errors with
// their result codes and messages), for the test to compare between a
// direct connection and one through ldapmux.
//
// Scenarios:
//   readers PEOPLE_DN RESTRICTED_DN (USER_DN PASSWORD)...
//       one thread per user at once, each bound as that user: searches,
//       pages, sorts, compares, size limits, refused reads, a failed bind
//   writer WRITER_DN PASSWORD SCRATCH_DN USER_DN
//       adds, reads back, modifies, renames, deletes, refused writes,
//       "Who am I?"

import java.util.*;
import java.util.concurrent.*;
import javax.naming.*;
import javax.naming.directory.*;
import javax.naming.ldap.*;

public class JndiClient {
    static String uri;

    public static void main(String[] args) throws Exception {
        uri = args[0];
        Object out;
        switch (args[1]) {
            case "readers": out = readers(args); break;
            case "writer": out = writer(args[2], args[3], args[4], args[5]); break;
            default: throw new IllegalArgumentException("unknown scenario " + args[1]);
        }
        System.out.println(json(out));
    }

    static LdapContext connect(String dn, String password) throws NamingException {
        Hashtable<String, Object> env = new Hashtable<>();
        env.put(Context.INITIAL_CONTEXT_FACTORY, "com.sun.jndi.ldap.LdapCtxFactory");
        env.put(Context.PROVIDER_URL, uri);
        env.put(Context.SECURITY_AUTHENTICATION, dn == null ? "none" : "simple");
        if (dn != null) {
            env.put(Context.SECURITY_PRINCIPAL, dn);
            env.put(Context.SECURITY_CREDENTIALS, password);
        }
        env.put("com.sun.jndi.ldap.connect.pool", "true");
        env.put("com.sun.jndi.ldap.connect.timeout", "10000");
        env.put("com.sun.jndi.ldap.read.timeout", "20000");
        return new InitialLdapContext(env, null);
    }

    // Transcript records each step's answer, or the error it raised.
    static class Transcript {
        final List<Object> steps = new ArrayList<>();

        interface Step { Object run() throws Exception; }

        void run(String name, Step step) {
            Object answer;
            try {
                answer = step.run();
            } catch (Exception e) {
                answer = error(e);
            }
            steps.add(Arrays.asList(name, answer));
        }
    }

    static Map<String, Object> error(Exception e) {
        Map<String, Object> m = new TreeMap<>();
        m.put("error", e.getClass().getSimpleName());
        m.put("message", String.valueOf(e.getMessage()));
        if (e instanceof NamingException) {
            Name resolved = ((NamingException) e).getResolvedName();
            m.put("resolved", resolved == null ? null : resolved.toString());
        }
        return m;
    }

    static List<Object> entries(NamingEnumeration<SearchResult> results) throws NamingException {
        List<Object> out = new ArrayList<>();
        try {
            while (results.hasMore()) {
                SearchResult r = results.next();
                out.add(Arrays.asList(r.getNameInNamespace(), attributes(r.getAttributes())));
            }
        } catch (NamingException e) { // a limit reached after some entries
            out.add(error(e));
        }
        return out;
    }

    static Map<String, Object> attributes(Attributes attrs) throws NamingException {
        Map<String, Object> m = new TreeMap<>();
        for (NamingEnumeration<? extends Attribute> all = attrs.getAll(); all.hasMore(); ) {
            Attribute a = all.next();
            List<String> values = new ArrayList<>();
            for (NamingEnumeration<?> vs = a.getAll(); vs.hasMore(); ) {
                Object v = vs.next();
                values.add(v instanceof byte[] ? Base64.getEncoder().encodeToString((byte[]) v) : v.toString());
            }
            Collections.sort(values);
            m.put(a.getID().toLowerCase(), values);
        }
        return m;
    }

    static SearchControls controls(int scope, long sizeLimit, String... attrs) {
        SearchControls sc = new SearchControls();
        sc.setSearchScope(scope);
        sc.setCountLimit(sizeLimit);
        sc.setReturningAttributes(attrs);
        return sc;
    }

    static Object readers(String[] args) throws Exception {
        String people = args[2], restricted = args[3];
        int n = (args.length - 4) / 2;
        ExecutorService pool = Executors.newFixedThreadPool(n);
        List<Future<List<Object>>> runs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String dn = args[4 + 2 * i], password = args[5 + 2 * i];
            runs.add(pool.submit(() -> reader(people, restricted, dn, password)));
        }
        Map<String, Object> out = new TreeMap<>();
        for (int i = 0; i < n; i++) {
            out.put(args[4 + 2 * i], runs.get(i).get(120, TimeUnit.SECONDS));
        }
        pool.shutdown();
        return out;
    }

    static List<Object> reader(String people, String restricted, String dn, String password) throws Exception {
        Transcript t = new Transcript();
        LdapContext ctx = connect(dn, password);
        String uid = dn.substring(dn.indexOf('=') + 1, dn.indexOf(','));
        t.run("own entry", () -> attributes(ctx.getAttributes(dn, new String[]{"uid", "cn", "sn", "mail"})));
        t.run("search", () -> entries(ctx.search(people, "(uid=user.1*)", controls(SearchControls.ONELEVEL_SCOPE, 0, "uid", "cn"))));
        t.run("paged search", () -> {
            ctx.setRequestControls(new Control[]{new PagedResultsControl(7, Control.CRITICAL)});
            List<Object> pages = new ArrayList<>();
            byte[] cookie;
            do {
                pages.add(entries(ctx.search(people, "(objectClass=inetOrgPerson)", controls(SearchControls.ONELEVEL_SCOPE, 0, "uid"))).size());
                cookie = null;
                Control[] got = ctx.getResponseControls();
                for (Control c : got == null ? new Control[0] : got) {
                    if (c instanceof PagedResultsResponseControl) {
                        cookie = ((PagedResultsResponseControl) c).getCookie();
                    }
                }
                ctx.setRequestControls(new Control[]{new PagedResultsControl(7, cookie, Control.CRITICAL)});
            } while (cookie != null && cookie.length > 0);
            ctx.setRequestControls(null);
            return pages;
        });
        t.run("sorted, size limit", () -> sorted(ctx, people, new SortKey("cn", false, "caseIgnoreOrderingMatch")));
        t.run("sorted without an ordering rule", () -> sorted(ctx, people, new SortKey("uid", true, null)));
        t.run("compare true", () -> ctx.search(dn, "(uid=" + uid + ")", controls(SearchControls.OBJECT_SCOPE, 0)).hasMore());
        t.run("compare false", () -> ctx.search(dn, "(uid=nobody)", controls(SearchControls.OBJECT_SCOPE, 0)).hasMore());
        t.run("restricted", () -> entries(ctx.search(restricted, "(objectClass=*)", controls(SearchControls.SUBTREE_SCOPE, 0))));
        t.run("missing base", () -> entries(ctx.search("ou=missing," + people, "(objectClass=*)", controls(SearchControls.OBJECT_SCOPE, 0))));
        t.run("filter", () -> entries(ctx.search(people, "(&(objectClass=inetOrgPerson)(|(uid=user.2)(cn=User 3)(mail=user.4@*)))",
            controls(SearchControls.ONELEVEL_SCOPE, 0, "uid"))));
        t.run("wrong password", () -> {
            connect(dn, password + "-wrong").close();
            return "bound";
        });
        t.run("anonymous read", () -> {
            LdapContext anon = connect(null, null);
            try {
                return attributes(anon.getAttributes(dn, new String[]{"uid", "mail"}));
            } finally {
                anon.close();
            }
        });
        ctx.close();
        return t.steps;
    }

    // sorted searches the people sorted by key, at most 5 of them.
    static List<Object> sorted(LdapContext ctx, String people, SortKey key) throws Exception {
        ctx.setRequestControls(new Control[]{new SortControl(new SortKey[]{key}, Control.CRITICAL)});
        try {
            return entries(ctx.search(people, "(uid=user.*)", controls(SearchControls.ONELEVEL_SCOPE, 5, "uid")));
        } finally {
            ctx.setRequestControls(null);
        }
    }

    static Object writer(String writerDN, String password, String scratch, String userDN) throws Exception {
        Transcript t = new Transcript();
        LdapContext ctx = connect(writerDN, password);
        String dn = "cn=jndi-entry," + scratch, renamed = "cn=jndi-renamed," + scratch;
        t.run("add", () -> {
            BasicAttributes attrs = new BasicAttributes(true);
            BasicAttribute oc = new BasicAttribute("objectClass");
            oc.add("organizationalRole");
            attrs.put(oc);
            attrs.put("cn", "jndi-entry");
            attrs.put("description", "made by JNDI");
            ctx.createSubcontext(dn, attrs).close();
            return "added";
        });
        t.run("read back", () -> attributes(ctx.getAttributes(dn, new String[]{"cn", "description", "creatorsName"})));
        t.run("add again", () -> {
            BasicAttributes attrs = new BasicAttributes(true);
            attrs.put("objectClass", "organizationalRole");
            attrs.put("cn", "jndi-entry");
            ctx.createSubcontext(dn, attrs);
            return "added";
        });
        t.run("modify", () -> {
            ctx.modifyAttributes(dn, new ModificationItem[]{
                new ModificationItem(DirContext.REPLACE_ATTRIBUTE, new BasicAttribute("description", "changed")),
                new ModificationItem(DirContext.ADD_ATTRIBUTE, new BasicAttribute("seeAlso", userDN)),
            });
            return attributes(ctx.getAttributes(dn, new String[]{"description", "seeAlso", "modifiersName"}));
        });
        t.run("modify against the schema", () -> {
            ctx.modifyAttributes(dn, DirContext.ADD_ATTRIBUTE, new BasicAttributes("mail", "no@example.com", true));
            return "modified";
        });
        t.run("rename", () -> {
            ctx.rename(dn, renamed);
            return attributes(ctx.getAttributes(renamed, new String[]{"cn", "description"}));
        });
        t.run("read the old name", () -> attributes(ctx.getAttributes(dn)));
        t.run("modify someone else", () -> {
            ctx.modifyAttributes(userDN, DirContext.REPLACE_ATTRIBUTE, new BasicAttributes("mail", "taken@example.com", true));
            return "modified";
        });
        t.run("who am I", () -> {
            ExtendedResponse r = ctx.extendedOperation(new WhoAmI());
            return new String(r.getEncodedValue(), "UTF-8");
        });
        t.run("delete", () -> {
            ctx.destroySubcontext(renamed);
            return entries(ctx.search(scratch, "(cn=jndi-*)", controls(SearchControls.ONELEVEL_SCOPE, 0, "cn")));
        });
        t.run("delete a missing entry", () -> {
            ctx.destroySubcontext(renamed);
            return "deleted";
        });
        ctx.close();
        return t.steps;
    }

    // WhoAmI is the "Who am I?" extended operation (RFC 4532).
    static class WhoAmI implements ExtendedRequest {
        public String getID() { return "1.3.6.1.4.1.4203.1.11.3"; }
        public byte[] getEncodedValue() { return null; }
        public ExtendedResponse createExtendedResponse(String id, byte[] value, int offset, int length) {
            byte[] v = Arrays.copyOfRange(value == null ? new byte[0] : value, offset, offset + length);
            return new ExtendedResponse() {
                public String getID() { return id; }
                public byte[] getEncodedValue() { return v; }
            };
        }
    }

    static String json(Object o) {
        StringBuilder b = new StringBuilder();
        write(b, o);
        return b.toString();
    }

    static void write(StringBuilder b, Object o) {
        if (o == null) {
            b.append("null");
        } else if (o instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (!first) b.append(',');
                first = false;
                write(b, e.getKey().toString());
                b.append(':');
                write(b, e.getValue());
            }
            b.append('}');
        } else if (o instanceof List) {
            b.append('[');
            boolean first = true;
            for (Object v : (List<?>) o) {
                if (!first) b.append(',');
                first = false;
                write(b, v);
            }
            b.append(']');
        } else if (o instanceof Boolean || o instanceof Number) {
            b.append(o);
        } else {
            b.append('"');
            for (char c : o.toString().toCharArray()) {
                if (c == '"' || c == '\\') b.append('\\').append(c);
                else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                else b.append(c);
            }
            b.append('"');
        }
    }
}

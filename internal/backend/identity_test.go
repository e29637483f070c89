package backend

import (
	"context"
	"errors"
	"fmt"
	"github.com/ldapmux/ldapmux/internal/evloop/evlooptest"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// dseServer is a tiny LDAP server with a configurable root DSE: it accepts
// every bind, answers a root DSE search without controls (the read at
// connect) with dse, and a search carrying a Proxied Authorization control
// with the entry searched and success, or as refuse says for that authzId
// (a result code, or hideEntries). It records the root DSE reads and the
// authzIds of the proxied searches.
type dseServer struct {
	l  net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex // mu guards the fields below
	dse      []ldapwire.Attribute
	refuse   map[string]int // authzId → result code of its proxied search
	reads    int            // root DSE reads without a control
	proxied  []string       // authzIds of the proxied searches, in order
	accepted int
	conns    []net.Conn
}

func startDSE(t *testing.T, dse ...ldapwire.Attribute) *dseServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &dseServer{l: l, dse: dse, refuse: map[string]int{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *dseServer) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.l.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.accepted++
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serve(nc)
	}
}

func (f *dseServer) serve(nc net.Conn) {
	defer f.wg.Done()
	defer nc.Close()
	r := ldapwire.NewReader(nc, 0)
	for {
		frame, err := r.Next()
		if err != nil {
			return
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			return
		}
		switch msg.OpTag {
		case ldapwire.OpUnbindRequest:
			return
		case ldapwire.OpBindRequest:
			nc.Write(ldapwire.AppendResult(nil, msg.ID, ldapwire.OpBindResponse, ldapwire.Success, ""))
		case ldapwire.OpSearchRequest:
			nc.Write(f.search(msg))
		}
	}
}

// hideEntries as a refusal code answers the proxied search with success
// and no entry, as 389 Directory Server does without a proxy ACI.
const hideEntries = -1

func (f *dseServer) search(msg ldapwire.Message) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDProxiedAuthzV2); ok {
		f.proxied = append(f.proxied, string(c.Value))
		switch code := f.refuse[string(c.Value)]; {
		case code == hideEntries: // 389 Directory Server: the proxy right is checked per entry
			return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
		case code != 0:
			return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, code, "not allowed to proxy")
		}
		out := ldapwire.AppendSearchEntry(nil, msg.ID, string(msg.TargetDN()), nil, false)
		return ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
	}
	f.reads++
	out := ldapwire.AppendSearchEntry(nil, msg.ID, "", f.dse, false)
	return ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
}

// counts returns the root DSE reads and the proxied searches so far.
func (f *dseServer) counts() (reads int, proxied []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads, append([]string(nil), f.proxied...)
}

func (f *dseServer) setRefuse(authzID string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse[authzID] = code
}

func (f *dseServer) close() {
	f.l.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Root DSEs of the servers ldapmux recognises.
var (
	proxiedControl = ldapwire.Attribute{Type: "supportedControl", Values: []string{"1.2.840.113556.1.4.319", ldapwire.OIDProxiedAuthzV2}}
	openLDAPDSE    = []ldapwire.Attribute{{Type: "objectClass", Values: []string{"top", "OpenLDAProotDSE"}}, proxiedControl}
	dsDSE          = []ldapwire.Attribute{{Type: "vendorName", Values: []string{"389 Project"}},
		{Type: "vendorVersion", Values: []string{"389-Directory/2.4.5"}}, proxiedControl}
	adDSE = []ldapwire.Attribute{{Type: "forestFunctionality", Values: []string{"7"}},
		{Type: "domainControllerFunctionality", Values: []string{"7"}},
		{Type: "supportedControl", Values: []string{"1.2.840.113556.1.4.319", "1.2.840.113556.1.4.473"}}}
)

// dialDSE opens an operation connection, bound as the service account, to
// a server named "dse" with the given identity settings.
func dialDSE(t *testing.T, s *Server) (*Conn, error) {
	t.Helper()
	c, err := Dial(context.Background(), s, OpConn, "cn=service", "secret", 2*time.Second, 0)
	if err == nil {
		t.Cleanup(c.closeGracefully)
	}
	return c, err
}

func dseServerOf(f *dseServer, set IdentitySettings) *Server {
	return &Server{Name: "dse", Address: f.l.Addr().String(), Identity: set, Loops: evlooptest.Loops()}
}

// Each server type is recognised from its root DSE, and auto chooses
// proxied authorization exactly when the control is listed; in that mode
// the service account's right to proxy is proven as anonymous ("dn:").
func TestDetectServerTypeAndMode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dse     []ldapwire.Attribute
		typ     string
		vendor  string
		mode    IdentityMode
		proxied bool
	}{
		{"openldap", openLDAPDSE, TypeOpenLDAP, "", ModeProxied, true},
		{"389ds", dsDSE, Type389DS, "389 Project 389-Directory/2.4.5", ModeProxied, true},
		{"active directory", adDSE, TypeAD, "", ModeClientBind, false},
		{"generic without the control", []ldapwire.Attribute{{Type: "objectClass", Values: []string{"top"}}}, TypeGeneric, "", ModeClientBind, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startDSE(t, tc.dse...)
			s := dseServerOf(f, IdentitySettings{})
			if _, err := dialDSE(t, s); err != nil {
				t.Fatalf("dial: %v", err)
			}
			caps := s.Capabilities()
			if caps == nil {
				t.Fatal("no capabilities after a service-bound dial")
			}
			if caps.Err != nil || caps.Type != tc.typ || caps.Vendor != tc.vendor || caps.Mode != tc.mode || caps.ProxiedAuthz != tc.proxied {
				t.Fatalf("capabilities %+v, want type %q vendor %q mode %s proxied %v", caps, tc.typ, tc.vendor, tc.mode, tc.proxied)
			}
			if got := s.ClientBind(); got != (tc.mode == ModeClientBind) {
				t.Errorf("ClientBind() = %v in mode %s", got, tc.mode)
			}
			_, proxied := f.counts()
			want := []string{}
			if tc.mode == ModeProxied {
				want = []string{"dn:"}
			}
			if strings.Join(proxied, "|") != strings.Join(want, "|") {
				t.Errorf("proxied searches as %q, want %q", proxied, want)
			}
		})
	}
}

// 389 Directory Server refuses to assume its root DN, which names no entry
// in its data: the DNs outside its naming contexts, read from its root DSE
// (or, when it lists none, its default root DN) are the ones ldapmux cannot
// carry in the control; any DN on another server, or in another mode, can.
func TestDNsA389ServerCannotAssume(t *testing.T) {
	withContexts := append(slices.Clone(dsDSE), ldapwire.Attribute{Type: "namingContexts", Values: []string{"dc=example,dc=test", "o=other"}})
	for _, tc := range []struct {
		name      string
		dse       []ldapwire.Attribute
		set       IdentitySettings
		unassumed []string
		assumable []string
	}{
		{"389 with naming contexts", withContexts, IdentitySettings{},
			[]string{"cn=Directory Manager", "CN=directory manager", "cn=replication manager,cn=config", "dc=test"},
			[]string{"uid=user.1,ou=people,dc=example,dc=test", "UID=User.1, OU=People, DC=Example, DC=Test", "dc=example,dc=test", "cn=x,o=other", "", "not a DN"}},
		{"389 without naming contexts", dsDSE, IdentitySettings{},
			[]string{"cn=Directory Manager", "CN=DIRECTORY MANAGER"},
			[]string{"cn=replication manager,cn=config", "uid=user.1,ou=people,dc=example,dc=test"}},
		{"389 in client-bind mode", withContexts, IdentitySettings{Mode: ModeClientBind},
			nil, []string{"cn=Directory Manager"}},
		{"openldap", append(slices.Clone(openLDAPDSE), ldapwire.Attribute{Type: "namingContexts", Values: []string{"dc=example,dc=com"}}), IdentitySettings{},
			nil, []string{"cn=Directory Manager", "cn=config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := dseServerOf(startDSE(t, tc.dse...), tc.set)
			if _, err := dialDSE(t, s); err != nil {
				t.Fatalf("dial: %v", err)
			}
			caps := s.Capabilities()
			for _, dn := range tc.unassumed {
				if !caps.CannotAssume(dn) {
					t.Errorf("CannotAssume(%q) = false, want true", dn)
				}
			}
			for _, dn := range tc.assumable {
				if caps.CannotAssume(dn) {
					t.Errorf("CannotAssume(%q) = true, want false", dn)
				}
			}
		})
	}
	var none *Capabilities // before the first connect
	if none.CannotAssume("cn=Directory Manager") {
		t.Error("CannotAssume before any capabilities were read = true")
	}
}

// 389 Directory Server leaves a session as it was after a bind it rejects
// before reading it; slapd, and 389 after a wrong password, make it
// anonymous.
func TestServersThatKeepASessionAfterAFailedBind(t *testing.T) {
	for _, tc := range []struct {
		name string
		dse  []ldapwire.Attribute
		kept []int
		lost []int
	}{
		{"389", dsDSE, []int{ldapwire.InvalidDNSyntax, ldapwire.UnavailableCriticalExtension},
			[]int{ldapwire.InvalidCredentials, ldapwire.UnwillingToPerform, ldapwire.ProtocolError, ldapwire.Unavailable}},
		{"openldap", openLDAPDSE, nil, []int{ldapwire.InvalidDNSyntax, ldapwire.UnavailableCriticalExtension, ldapwire.InvalidCredentials}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := dseServerOf(startDSE(t, tc.dse...), IdentitySettings{})
			if _, err := dialDSE(t, s); err != nil {
				t.Fatalf("dial: %v", err)
			}
			caps := s.Capabilities()
			for _, code := range tc.kept {
				if !caps.KeepsSessionAfter(code) {
					t.Errorf("KeepsSessionAfter(%d) = false, want true", code)
				}
			}
			for _, code := range tc.lost {
				if caps.KeepsSessionAfter(code) {
					t.Errorf("KeepsSessionAfter(%d) = true, want false", code)
				}
			}
		})
	}
	var none *Capabilities
	if none.KeepsSessionAfter(ldapwire.InvalidDNSyntax) {
		t.Error("KeepsSessionAfter before any capabilities were read = true")
	}
}

// A server that lists the control but refuses the service account's
// proxied search cannot be used: the dial fails with ErrIdentityMode, an
// error naming the identity refused and the right to grant, and the
// server's capabilities keep the reason.
func TestDialFailsWhenTheServiceAccountCannotProxy(t *testing.T) {
	f := startDSE(t, openLDAPDSE...)
	f.setRefuse("dn:", 123)
	s := dseServerOf(f, IdentitySettings{})
	_, err := dialDSE(t, s)
	if !errors.Is(err, ErrIdentityMode) {
		t.Fatalf("dial: %v, want an error wrapping ErrIdentityMode", err)
	}
	for _, want := range []string{`"dn:"`, "123", "grant", "authzTo"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if caps := s.Capabilities(); caps == nil || !errors.Is(caps.Err, ErrIdentityMode) || s.ClientBind() {
		t.Errorf("capabilities %+v after a failed proof", caps)
	}
}

// ProxyCheckDN is proven too: the server sees a proxied search as
// "dn:<that DN>"; refusing it, or hiding the entry (389 Directory Server
// without a proxy ACI), fails the dial naming that identity.
func TestProxyCheckDNIsProven(t *testing.T) {
	const check = "uid=probe,ou=people,dc=example,dc=com"
	f := startDSE(t, dsDSE...)
	s := dseServerOf(f, IdentitySettings{ProxyCheckDN: check})
	if _, err := dialDSE(t, s); err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, proxied := f.counts(); strings.Join(proxied, "|") != "dn:|dn:"+check {
		t.Fatalf("proxied searches as %q, want dn: then dn:%s", proxied, check)
	}

	f3 := startDSE(t, dsDSE...)
	f3.setRefuse("dn:"+check, hideEntries)
	_, err := dialDSE(t, dseServerOf(f3, IdentitySettings{ProxyCheckDN: check}))
	if !errors.Is(err, ErrIdentityMode) || !strings.Contains(err.Error(), "not visible") {
		t.Fatalf("dial with the check DN's entry hidden (389 without a proxy ACI): %v", err)
	}

	f2 := startDSE(t, dsDSE...)
	f2.setRefuse("dn:"+check, 123)
	_, err = dialDSE(t, dseServerOf(f2, IdentitySettings{ProxyCheckDN: check}))
	if !errors.Is(err, ErrIdentityMode) || !strings.Contains(err.Error(), `"dn:`+check+`"`) || !strings.Contains(err.Error(), "123") ||
		!strings.Contains(err.Error(), "grant") {
		t.Fatalf("dial with the check DN refused: %v", err)
	}
}

// A server that refuses anonymous clients (slapd's `require authc`) refuses
// the proxied anonymous read of the proof with unwillingToPerform: the
// control was honoured, and the server is usable for bound clients.
func TestProofAcceptsAServerThatRefusesAnonymousClients(t *testing.T) {
	f := startDSE(t, openLDAPDSE...)
	f.setRefuse("dn:", ldapwire.UnwillingToPerform)
	s := dseServerOf(f, IdentitySettings{})
	if _, err := dialDSE(t, s); err != nil {
		t.Fatalf("dial: %v", err)
	}
	if caps := s.Capabilities(); caps == nil || caps.Err != nil || caps.Mode != ModeProxied {
		t.Errorf("capabilities %+v, want proxied mode without a problem", caps)
	}
	for _, code := range []int{ldapwire.UnavailableCriticalExtension, ldapwire.ProtocolError} {
		f := startDSE(t, openLDAPDSE...)
		f.setRefuse("dn:", code)
		if _, err := dialDSE(t, dseServerOf(f, IdentitySettings{})); !errors.Is(err, ErrIdentityMode) {
			t.Errorf("proxied anonymous read refused with %d: dial %v, want ErrIdentityMode", code, err)
		}
	}
}

// Proxied authorization configured on a server that does not list the
// control is refused with a message pointing to client-bind, without
// trying a proxied search.
func TestConfiguredProxiedModeNeedsTheControl(t *testing.T) {
	f := startDSE(t, adDSE...)
	s := dseServerOf(f, IdentitySettings{Mode: ModeProxied})
	_, err := dialDSE(t, s)
	if !errors.Is(err, ErrIdentityMode) || !strings.Contains(err.Error(), "client-bind") {
		t.Fatalf("dial: %v, want ErrIdentityMode saying to use client-bind", err)
	}
	if _, proxied := f.counts(); len(proxied) != 0 {
		t.Errorf("proxied searches %q on a server without the control", proxied)
	}
}

// Configured settings win over detection: a type, and client-bind on a
// server that lists the control (no proof is then needed).
func TestConfiguredSettingsOverrideDetection(t *testing.T) {
	f := startDSE(t, openLDAPDSE...)
	s := dseServerOf(f, IdentitySettings{Type: Type389DS, Mode: ModeClientBind})
	if _, err := dialDSE(t, s); err != nil {
		t.Fatalf("dial: %v", err)
	}
	caps := s.Capabilities()
	if caps.Type != Type389DS || caps.Mode != ModeClientBind || !caps.ProxiedAuthz || caps.Err != nil {
		t.Fatalf("capabilities %+v, want the configured type 389ds and mode client-bind", caps)
	}
	if !s.ClientBind() {
		t.Error("ClientBind() false in configured client-bind mode")
	}
	if _, proxied := f.counts(); len(proxied) != 0 {
		t.Errorf("proxied searches %q in client-bind mode", proxied)
	}
}

// The root DSE is read at the first dial, not at every one within a
// minute; after an error it is read at the next dial, and again once the
// last reading is old.
func TestDetectionIsNotRepeatedAtEveryDial(t *testing.T) {
	f := startDSE(t, openLDAPDSE...)
	f.setRefuse("dn:", 123)
	s := dseServerOf(f, IdentitySettings{})
	if _, err := dialDSE(t, s); !errors.Is(err, ErrIdentityMode) {
		t.Fatalf("first dial: %v, want ErrIdentityMode", err)
	}
	if _, err := dialDSE(t, s); !errors.Is(err, ErrIdentityMode) {
		t.Fatalf("second dial: %v, want ErrIdentityMode again: a failed detection must be repeated", err)
	}
	if reads, _ := f.counts(); reads != 2 {
		t.Fatalf("%d root DSE reads after two failed dials, want 2", reads)
	}
	f.setRefuse("dn:", 0)
	for i := range 3 {
		if _, err := dialDSE(t, s); err != nil {
			t.Fatalf("dial %d after the right was granted: %v", i, err)
		}
	}
	if reads, _ := f.counts(); reads != 3 {
		t.Fatalf("%d root DSE reads after 3 successful dials, want 3 (once after the errors)", reads)
	}
	old := *s.Capabilities()
	old.At = time.Now().Add(-2 * detectEvery)
	s.caps.p.Store(&old)
	if _, err := dialDSE(t, s); err != nil {
		t.Fatal(err)
	}
	if reads, _ := f.counts(); reads != 4 {
		t.Fatalf("%d root DSE reads after the last reading got old, want 4", reads)
	}
	// An unbound connection (a client's own bind goes on it) never reads.
	c, err := Dial(context.Background(), s, LeasedConn, "", "", 2*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.closeGracefully()
	if reads, _ := f.counts(); reads != 4 {
		t.Fatalf("an unbound connection read the root DSE (%d reads)", reads)
	}
}

// Pool.Detect returns the capabilities, dialing only when they are not
// fresh; a server that cannot serve its mode gives capabilities with the
// reason and no error; a server that cannot be reached gives an error.
func TestPoolDetect(t *testing.T) {
	f := startDSE(t, adDSE...)
	s := dseServerOf(f, IdentitySettings{})
	p := NewPool(s, PoolConfig{Conns: 1, BindConns: 1, ConnectTimeout: 2 * time.Second, OperationTimeout: 2 * time.Second,
		BindDN: "cn=service", Password: "secret"})
	t.Cleanup(p.Close)
	caps, err := p.Detect(context.Background())
	if err != nil || caps == nil || caps.Type != TypeAD || caps.Mode != ModeClientBind || caps.Err != nil {
		t.Fatalf("Detect: %+v, %v; want active-directory in client-bind mode", caps, err)
	}
	if !strings.Contains(caps.Summary(), "active-directory, identity client-bind") {
		t.Errorf("summary %q", caps.Summary())
	}
	again, err := p.Detect(context.Background())
	if err != nil || again != caps {
		t.Fatalf("second Detect: %+v, %v; want the same capabilities", again, err)
	}
	f.mu.Lock()
	accepted := f.accepted
	f.mu.Unlock()
	if reads, _ := f.counts(); reads != 1 || accepted != 1 {
		t.Fatalf("%d root DSE reads on %d connections for two Detects within a minute, want 1 on 1", reads, accepted)
	}

	f2 := startDSE(t, dsDSE...)
	f2.setRefuse("dn:", 123)
	p2 := NewPool(dseServerOf(f2, IdentitySettings{}), PoolConfig{Conns: 1, BindConns: 1, ConnectTimeout: 2 * time.Second,
		OperationTimeout: 2 * time.Second, BindDN: "cn=service", Password: "secret"})
	t.Cleanup(p2.Close)
	caps, err = p2.Detect(context.Background())
	if err != nil || caps == nil || !errors.Is(caps.Err, ErrIdentityMode) || caps.Type != Type389DS {
		t.Fatalf("Detect on a server refusing the proof: %+v, %v; want capabilities with the reason", caps, err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p3 := NewPool(&Server{Name: "gone", Address: addr}, PoolConfig{Conns: 1, BindConns: 1, ConnectTimeout: time.Second,
		OperationTimeout: time.Second, BindDN: "cn=service", Password: "secret"})
	t.Cleanup(p3.Close)
	if caps, err := p3.Detect(context.Background()); err == nil {
		t.Fatalf("Detect on a closed port: %+v and no error", caps)
	}
}

// The DNs a server refused to let the proxy assume are kept per server,
// whatever their case, and at most maxRefusedDNs of them.
func TestRefusedDNsAreKeptBounded(t *testing.T) {
	s := &Server{Name: "ds1"}
	if s.Refused("uid=writer,ou=apps,dc=example,dc=com") {
		t.Fatal("a DN is refused before any refusal")
	}
	if !s.NoteRefused("uid=writer,ou=apps,dc=example,dc=com") || s.NoteRefused("UID=Writer,OU=Apps,DC=Example,DC=Com") {
		t.Fatal("NoteRefused does not tell a new DN from a known one")
	}
	if !s.Refused("UID=WRITER,ou=apps,dc=example,dc=com") || s.Refused("uid=other,ou=apps,dc=example,dc=com") {
		t.Fatal("Refused does not find the refused DN alone")
	}
	for i := range 2 * maxRefusedDNs {
		s.NoteRefused(fmt.Sprintf("uid=%d,dc=example,dc=com", i))
	}
	if n := len(s.refused.set); n != maxRefusedDNs {
		t.Fatalf("%d refused DNs kept; want at most %d", n, maxRefusedDNs)
	}
}

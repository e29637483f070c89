package health

import (
	"net"
	"slices"
	"sync"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// testServer is a minimal in-process LDAP server: it accepts any bind,
// serves a root DSE listing the persistent search control, one mutable
// monitor entry, and persistent searches to which the test sends alerts.
type testServer struct {
	ln        net.Listener
	monitorDN string

	mu       sync.Mutex // mu guards the fields below
	monitor  map[string][]string
	watchers []*watcher
	conns    []net.Conn
	searches int // monitor entry reads
	wg       sync.WaitGroup
}

// watcher is a persistent search in progress.
type watcher struct {
	conn *serverConn
	id   int64
}

// serverConn serialises writes to one client connection.
type serverConn struct {
	mu   sync.Mutex
	conn net.Conn
}

func (c *serverConn) send(id int64, op *ber.Packet) {
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	msg.AppendChild(op)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.conn.Write(msg.Bytes())
}

func newTestServer(t *testing.T, monitorDN string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, monitorDN: monitorDN, monitor: map[string][]string{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(&serverConn{conn: conn})
	}
}

// serve answers one connection's requests until it closes.
func (s *testServer) serve(c *serverConn) {
	defer s.wg.Done()
	defer c.conn.Close()
	for {
		p, err := ber.ReadPacket(c.conn)
		if err != nil || len(p.Children) < 2 {
			return
		}
		id, _ := p.Children[0].Value.(int64)
		op := p.Children[1]
		switch op.Tag {
		case 0: // bind
			c.send(id, result(1, 0))
		case 2: // unbind
			return
		case 3: // search
			s.search(c, id, op, p)
		}
	}
}

// search answers the root DSE, the monitor entry and persistent searches.
func (s *testServer) search(c *serverConn, id int64, op, msg *ber.Packet) {
	base := op.Children[0].Data.String()
	switch {
	case hasControl(msg, OIDPersistentSearch):
		s.mu.Lock()
		s.watchers = append(s.watchers, &watcher{conn: c, id: id})
		s.mu.Unlock()
		return // never ends
	case base == "":
		c.send(id, entry("", map[string][]string{"supportedControl": {OIDPersistentSearch}}))
	case base == s.monitorDN:
		s.mu.Lock()
		attrs := s.monitor
		s.searches++
		s.mu.Unlock()
		c.send(id, entry(base, attrs))
	default:
		c.send(id, result(5, 32)) // noSuchObject
		return
	}
	c.send(id, result(5, 0))
}

// hasControl reports whether an LDAP message carries control oid.
func hasControl(msg *ber.Packet, oid string) bool {
	if len(msg.Children) < 3 {
		return false
	}
	return slices.ContainsFunc(msg.Children[2].Children, func(c *ber.Packet) bool {
		return len(c.Children) > 0 && c.Children[0].Data.String() == oid
	})
}

// setMonitor replaces the monitor entry's attributes.
func (s *testServer) setMonitor(attrs map[string][]string) {
	s.mu.Lock()
	s.monitor = attrs
	s.mu.Unlock()
}

// alert sends a new alert entry to every persistent search; it reports how
// many there were.
func (s *testServer) alert(dn string) int {
	s.mu.Lock()
	ws := slices.Clone(s.watchers)
	s.mu.Unlock()
	for _, w := range ws {
		w.conn.send(w.id, entry(dn, map[string][]string{"objectClass": {"ds-admin-alert"}}))
	}
	return len(ws)
}

// watching is the number of persistent searches received.
func (s *testServer) watching() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// monitorReads is how many times the monitor entry was read.
func (s *testServer) monitorReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searches
}

// result is an LDAPResult operation with the given application tag.
func result(tag ber.Tag, code int64) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "Result")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, "resultCode"))
	op.AppendChild(octets("", "matchedDN"))
	op.AppendChild(octets("", "diagnosticMessage"))
	return op
}

// entry is a SearchResultEntry.
func entry(dn string, attrs map[string][]string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 4, nil, "SearchResultEntry")
	op.AppendChild(octets(dn, "objectName"))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for _, name := range sortedAttrs(attrs) {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
		a.AppendChild(octets(name, "type"))
		vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		for _, v := range attrs[name] {
			vals.AppendChild(octets(v, "value"))
		}
		a.AppendChild(vals)
		list.AppendChild(a)
	}
	op.AppendChild(list)
	return op
}

func octets(s, desc string) *ber.Packet {
	return ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, s, desc)
}

func sortedAttrs(attrs map[string][]string) []string {
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

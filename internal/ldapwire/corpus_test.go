package ldapwire

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestWriteFuzzCorpus regenerates the seed corpus in testdata/fuzz from real
// traffic: go-ldap and OpenLDAP's command-line clients talk to a real slapd
// through a recording relay, and every PDU seen in either direction is
// filed under the fuzz targets whose decoder reads it. It only runs with
// LDAPMUX_WRITE_CORPUS=1:
//
//	LDAPMUX_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./internal/ldapwire/
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("LDAPMUX_WRITE_CORPUS") == "" {
		t.Skip("set LDAPMUX_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 5})
	rec := startRecorder(t, cluster.Replicas[0].Addr)
	driveGoLDAP(t, rec.addr)
	driveOpenLDAPTools(t, rec.addr)
	pdus := rec.pdus(t)
	removeGenerated(t)
	written := 0
	for _, p := range pdus {
		for _, target := range targetsFor(p.msg, p.fromServer) {
			written += writeSeed(t, target, p.source, p.raw)
		}
	}
	t.Logf("%d PDUs captured, %d corpus files written", len(pdus), written)
}

// recorder relays connections to a server and keeps both byte streams.
type recorder struct {
	addr   string
	target string
	mu     sync.Mutex
	flows  []*flow
	wg     sync.WaitGroup
}

// flow is one connection's bytes in each direction, and who the client was.
type flow struct {
	source         string
	toServer, back bytes.Buffer
}

// capturedPDU is one framed message with its direction and origin.
type capturedPDU struct {
	raw        []byte
	msg        Message
	fromServer bool
	source     string
}

func startRecorder(t *testing.T, target string) *recorder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r := &recorder{addr: l.Addr().String(), target: target}
	go r.accept(l)
	return r
}

// current names the client of connections accepted from now on.
var currentSource = "goldap"

func (r *recorder) accept(l net.Listener) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		f := &flow{source: currentSource}
		r.mu.Lock()
		r.flows = append(r.flows, f)
		r.mu.Unlock()
		r.wg.Add(1)
		go r.relay(nc, f)
	}
}

func (r *recorder) relay(client net.Conn, f *flow) {
	defer r.wg.Done()
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(io.MultiWriter(server, &lockedWriter{mu: &r.mu, b: &f.toServer}), client)
		server.Close()
	})
	wg.Go(func() { io.Copy(io.MultiWriter(client, &lockedWriter{mu: &r.mu, b: &f.back}), server); client.Close() })
	wg.Wait()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// pdus frames everything recorded once all relays ended.
func (r *recorder) pdus(t *testing.T) []capturedPDU {
	r.wg.Wait()
	var out []capturedPDU
	for _, f := range r.flows {
		out = append(out, frameAll(t, f.toServer.Bytes(), false, f.source)...)
		out = append(out, frameAll(t, f.back.Bytes(), true, "slapd")...)
	}
	return out
}

func frameAll(t *testing.T, stream []byte, fromServer bool, source string) []capturedPDU {
	var out []capturedPDU
	fr := NewReader(bytes.NewReader(stream), 0)
	for {
		frame, err := fr.Next()
		if err != nil {
			return out
		}
		raw := append([]byte(nil), frame...)
		m, err := Parse(raw)
		if err != nil {
			t.Fatalf("captured PDU does not parse: %v (%x)", err, raw)
		}
		out = append(out, capturedPDU{raw: raw, msg: m, fromServer: fromServer, source: source})
	}
}

// targetsFor lists the fuzz targets a PDU is a seed of.
func targetsFor(m Message, fromServer bool) []string {
	targets := []string{"FuzzReader"}
	if m.Controls != nil {
		targets = append(targets, "FuzzEachControl")
	}
	if fromServer {
		if IsFinal(m.OpTag) {
			targets = append(targets, "FuzzParseResult")
		}
		return targets
	}
	targets = append(targets, "FuzzValidateRequest")
	switch m.OpTag {
	case OpBindRequest:
		targets = append(targets, "FuzzParseBind", "FuzzTargetDN")
	case OpExtendedRequest:
		targets = append(targets, "FuzzExtendedOID")
	case OpAbandonRequest:
		targets = append(targets, "FuzzAbandonTarget")
	case OpSearchRequest, OpAddRequest, OpModifyRequest, OpModifyDNRequest, OpCompareRequest, OpDelRequest:
		targets = append(targets, "FuzzTargetDN")
	}
	return targets
}

// removeGenerated deletes the seeds an earlier run wrote (fuzzer finds and
// hand-written seeds have other names).
func removeGenerated(t *testing.T) {
	for _, source := range []string{"goldap", "openldap", "slapd"} {
		old, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "*", source+"-*"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeSeed files raw under testdata/fuzz/target, named by origin and
// content hash; it returns 1 when the file is new.
func writeSeed(t *testing.T, target, source string, raw []byte) int {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	name := filepath.Join(dir, source+"-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(name); err == nil {
		return 0
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", raw)
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return 1
}

// driveGoLDAP runs every operation go-ldap can send.
func driveGoLDAP(t *testing.T, addr string) {
	currentSource = "goldap"
	conn, err := ldap.DialURL("ldap://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetTimeout(10 * time.Second)
	_ = conn.Bind("", "")
	_ = conn.UnauthenticatedBind(slapdtest.UserDN(1))
	_ = conn.Bind(slapdtest.UserDN(1), "wrong-password")
	_ = conn.ExternalBind()
	search := func(base string, scope int, filter string, attrs []string, controls ...ldap.Control) {
		_, _ = conn.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, controls))
	}
	search("", ldap.ScopeBaseObject, "(objectClass=*)", []string{"*", "+"})
	search(slapdtest.PeopleDN, ldap.ScopeWholeSubtree, "(&(uid=user.*)(!(cn=nobody))(|(mail=*)(sn>=1)))", []string{"uid", "mail"}, ldap.NewControlPaging(2))
	search(slapdtest.BaseDN, ldap.ScopeSingleLevel, "(ou=*)", nil, ldap.NewControlManageDsaIT(true),
		ldap.NewControlServerSideSortingWithSortKeys([]*ldap.SortKey{{AttributeType: "ou"}}))
	search(slapdtest.RestrictedDN, ldap.ScopeWholeSubtree, "(objectClass=*)", nil, ldap.NewControlString(slapdtest.ProxiedAuthzOID, true, "dn:"+slapdtest.UserDN(1)))
	_, _ = conn.SearchWithPaging(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(uid=*)", []string{"cn"}, nil), 2)
	_ = conn.Bind(slapdtest.WriterDN, slapdtest.WriterPassword)
	entry := "cn=corpus," + slapdtest.ScratchDN
	add := ldap.NewAddRequest(entry, nil)
	add.Attribute("objectClass", []string{"organizationalRole"})
	add.Attribute("cn", []string{"corpus"})
	_ = conn.Add(add)
	mod := ldap.NewModifyRequest(entry, nil)
	mod.Replace("description", []string{"seed"})
	mod.Add("description", []string{"another"})
	mod.Delete("description", []string{"another"})
	_ = conn.Modify(mod)
	_, _ = conn.Compare(entry, "description", "seed")
	_ = conn.ModifyDN(ldap.NewModifyDNRequest(entry, "cn=corpus2", true, ""))
	_ = conn.Del(ldap.NewDelRequest("cn=corpus2,"+slapdtest.ScratchDN, nil))
	_ = conn.Del(ldap.NewDelRequest("cn=missing,"+slapdtest.ScratchDN, []ldap.Control{ldap.NewControlSubtreeDelete()}))
	_, _ = conn.WhoAmI(nil)
	_, _ = conn.PasswordModify(ldap.NewPasswordModifyRequest("", "", ""))
	_, _ = conn.Extended(ldap.NewExtendedRequest("1.3.6.1.4.1.99999.1", nil))
	_, _ = conn.Extended(ldap.NewExtendedRequest(OIDStartTLS, nil))
	ctx, cancel := context.WithCancel(context.Background())
	resp := conn.SearchAsync(ctx, ldap.NewSearchRequest(slapdtest.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil), 1)
	cancel()
	for resp.Next() {
	}
	_ = conn.Unbind()
	sendAbandons(t, addr)
}

// sendAbandons sends AbandonRequests encoded with go-asn1-ber (go-ldap has
// no abandon of its own) for targets of every length, one with a control.
func sendAbandons(t *testing.T, addr string) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i, target := range []int64{1, 127, 128, 65535, MaxMessageID} {
		packet := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
		packet.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(i+2), "MessageID"))
		packet.AppendChild(ber.NewInteger(ber.ClassApplication, ber.TypePrimitive, ldap.ApplicationAbandonRequest, target, "Abandon Request"))
		if i == 0 {
			packet.AppendChild(controlsPacket([]ldap.Control{ldap.NewControlManageDsaIT(false)}))
		}
		if _, err := nc.Write(packet.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	nc.Write(AppendUnbind(nil, 9))
	io.Copy(io.Discard, nc)
}

// driveOpenLDAPTools runs the OpenLDAP clients, which encode differently.
func driveOpenLDAPTools(t *testing.T, addr string) {
	currentSource = "openldap"
	uri := "ldap://" + addr
	run := func(stdin, name string, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, append([]string{"-x", "-H", uri}, args...)...)
		cmd.Stdin = bytes.NewReader([]byte(stdin))
		_ = cmd.Run()
	}
	writer := []string{"-D", slapdtest.WriterDN, "-w", slapdtest.WriterPassword}
	run("", "ldapsearch", "-b", slapdtest.PeopleDN, "-E", "pr=2/noprompt", "(uid=*)", "uid")
	run("", "ldapsearch", "-b", "", "-s", "base", "-e", "manageDSAit", "+")
	run("", "ldapwhoami", "-D", slapdtest.UserDN(2), "-w", slapdtest.UserPassword(2))
	run("", "ldapwhoami", "-e", "!authzid=dn:"+slapdtest.UserDN(3))
	ldif := "dn: cn=cli,ou=scratch,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalRole\ncn: cli\n"
	run(ldif, "ldapmodify", writer...)
	run("", "ldapcompare", append(writer, "cn=cli,"+slapdtest.ScratchDN, "cn:cli")...)
	run("", "ldapmodrdn", append(writer, "-r", "cn=cli,"+slapdtest.ScratchDN, "cn=cli2")...)
	run("", "ldapdelete", append(writer, "cn=cli2,"+slapdtest.ScratchDN)...)
	run("", "ldappasswd", "-D", slapdtest.UserDN(4), "-w", slapdtest.UserPassword(4), "-s", "new-password")
}

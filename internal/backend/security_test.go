package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

func TestSentBeforeWrapsAround(t *testing.T) {
	for _, c := range []struct {
		a, b int32
		want bool
	}{{1, 2, true}, {2, 1, false}, {5, 5, false}, {ldapwire.MaxMessageID - 1, 3, true}, {3, ldapwire.MaxMessageID - 1, false}} {
		if got := sentBefore(c.a, c.b); got != c.want {
			t.Errorf("sentBefore(%d, %d) = %v", c.a, c.b, got)
		}
	}
}

// TestAbandonedOperationsWeighUntilALaterAnswer: an abandoned operation
// counts (twice) against its connection until the server answers a
// request sent after the abandon.
func TestAbandonedOperationsWeighUntilALaterAnswer(t *testing.T) {
	f, _, c := hungConn(t, PoolConfig{Conns: 1})
	id, err := c.Send(&probeHandler{done: make(chan error, 1)}, ldapwire.AppendRootDSEProbe, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Abandon(id)
	if c.Inflight() != 0 || c.Load() != ghostWeight {
		t.Fatalf("after abandon: in flight %d, load %d", c.Inflight(), c.Load())
	}
	f.hang.Store(false)
	if err := roundTrip(t, c); err != nil {
		t.Fatal(err)
	}
	if c.Load() != 0 {
		t.Fatalf("load %d after a later answer", c.Load())
	}
}

// TestPoolAnswersBusyAtTheConnectionLimit: OpConn refuses rather than
// piling more onto a full connection.
func TestPoolAnswersBusyAtTheConnectionLimit(t *testing.T) {
	_, p, c := hungConn(t, PoolConfig{Conns: 1, MaxPerConn: 2})
	for range 2 {
		if _, err := c.Send(&probeHandler{done: make(chan error, 1)}, ldapwire.AppendRootDSEProbe, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.OpConn(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("want ErrBusy at the limit, got %v", err)
	}
}

func TestStartOpStopsAtTheLimit(t *testing.T) {
	s := &Server{Name: "x"}
	started1, ok1 := s.StartOp(2)
	_, ok2 := s.StartOp(2)
	_, ok3 := s.StartOp(2)
	if !ok1 || !ok2 || ok3 || s.Outstanding() != 2 {
		t.Fatalf("ok %v %v %v, outstanding %d", ok1, ok2, ok3, s.Outstanding())
	}
	s.EndOp(started1)
	if _, ok := s.StartOp(2); !ok || s.Outstanding() != 2 {
		t.Fatalf("after one end: outstanding %d", s.Outstanding())
	}
	if n, _ := s.Completed(); n != 1 {
		t.Fatalf("completed %d", n)
	}
	end := s.Begin()
	end()
	end()
	if n, _ := s.Completed(); n != 2 || s.Outstanding() != 2 {
		t.Fatalf("Begin's end twice: completed %d, outstanding %d", n, s.Outstanding())
	}
}

// startTLSFake wraps the fake server's protocol in TLS, after StartTLS or from
// the first byte.
func startTLSFake(t *testing.T, startTLS bool) (*fakeServer, *x509.CertPool) {
	cert, pool := selfSigned(t, "127.0.0.1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{l: l}
	t.Cleanup(f.close)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				if startTLS && !answerStartTLS(nc) {
					nc.Close()
					return
				}
				f.serve(tls.Server(nc, cfg))
			}()
		}
	}()
	return f, pool
}

// answerStartTLS reads a StartTLS request and answers success.
func answerStartTLS(nc net.Conn) bool {
	frame, err := readExact(nc, 1024)
	if err != nil {
		return false
	}
	msg, err := ldapwire.Parse(frame)
	if err != nil || string(msg.ExtendedOID()) != ldapwire.OIDStartTLS {
		return false
	}
	_, err = nc.Write(ldapwire.AppendResult(nil, msg.ID, ldapwire.OpExtendedResponse, 0, ""))
	return err == nil
}

func selfSigned(t *testing.T, ip string) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestDialSecured(t *testing.T) {
	for _, mode := range []TLSMode{TLSLDAPS, TLSStartTLS} {
		t.Run(mode.String(), func(t *testing.T) {
			f, pool := startTLSFake(t, mode == TLSStartTLS)
			s := &Server{Name: "tls", Address: f.l.Addr().String()}
			s.SetTLS(&TLS{Mode: mode, Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
			c, err := Dial(context.Background(), s, OpConn, "cn=service", "secret", 5*time.Second, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(nil)
			if err := roundTrip(t, c); err != nil {
				t.Fatal(err)
			}
			s.SetTLS(&TLS{Mode: mode, Config: &tls.Config{RootCAs: pool, ServerName: "ldap.example.org"}})
			_, err = Dial(context.Background(), s, OpConn, "cn=service", "secret", 5*time.Second, 0)
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("a wrong server name must be refused, got %v", err)
			}
		})
	}
}

func TestStartTLSRefusedByServer(t *testing.T) {
	f := startFake(t) // answers the extended request with nothing it understands: closes
	s := &Server{Name: "plain", Address: f.l.Addr().String()}
	s.SetTLS(&TLS{Mode: TLSStartTLS, Config: &tls.Config{ServerName: "127.0.0.1"}})
	if _, err := Dial(context.Background(), s, OpConn, "", "", time.Second, 0); err == nil {
		t.Fatal("StartTLS against a server without TLS succeeded")
	}
}

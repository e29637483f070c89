package frontend

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
)

func TestProxyHeaderRoundTrip(t *testing.T) {
	dst := netip.MustParseAddrPort("10.0.0.1:389")
	for _, c := range []struct {
		src string
		ssl bool
	}{{"192.0.2.10:51000", false}, {"192.0.2.11:1", true}, {"[2001:db8::1]:4242", true}} {
		d := dst
		src := netip.MustParseAddrPort(c.src)
		if src.Addr().Is6() {
			d = netip.MustParseAddrPort("[2001:db8::2]:389")
		}
		hdr := AppendProxyHeader(nil, src, d, c.ssl)
		r := bytes.NewReader(append(hdr, "LDAP"...))
		info, err := readProxyHeader(r)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if info.src != src.Addr() || info.ssl != c.ssl || info.local {
			t.Fatalf("%s: got %+v", c.src, info)
		}
		if rest, _ := io.ReadAll(r); string(rest) != "LDAP" {
			t.Fatalf("%s: header reader consumed %d bytes too many", c.src, 4-len(rest))
		}
	}
}

func TestProxyHeaderLocalAndUnspecified(t *testing.T) {
	local := append(append([]byte{}, proxySignature...), 0x20, 0x00, 0, 0)
	unspec := append(append([]byte{}, proxySignature...), 0x21, 0x00, 0, 3, 1, 2, 3)
	for name, hdr := range map[string][]byte{"LOCAL": local, "UNSPEC": unspec} {
		info, err := readProxyHeader(bytes.NewReader(hdr))
		if err != nil || !info.local {
			t.Fatalf("%s: %+v %v", name, info, err)
		}
	}
}

func TestProxyHeaderRejects(t *testing.T) {
	good := AppendProxyHeader(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"), false)
	v1 := []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n")
	badVersion := append([]byte{}, good...)
	badVersion[12] = 0x11
	badCommand := append([]byte{}, good...)
	badCommand[12] = 0x2f
	short := append([]byte{}, good...)
	short[15] = 4 // IPv4 family with 4 address bytes
	for name, in := range map[string][]byte{
		"v1 text": v1, "version 1": badVersion, "command 15": badCommand,
		"truncated": good[:20], "short addresses": short[:20], "LDAP instead": {0x30, 0x0c, 0x02, 0x01, 0x01},
	} {
		if _, err := readProxyHeader(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "truncated" && name != "LDAP instead" && !errors.Is(err, errProxyHeader) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzProxyHeader: the PROXY header decoder reads hostile bytes from any
// trusted-network peer; it must never panic nor read past its length.
func FuzzProxyHeader(f *testing.F) {
	f.Add(AppendProxyHeader(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"), true))
	f.Add(AppendProxyHeader(nil, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:2"), false))
	f.Add(append(append([]byte{}, proxySignature...), 0x20, 0x00, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		info, err := readProxyHeader(r)
		if err != nil {
			return
		}
		used := len(data) - r.Len()
		if used < 16 || used != 16+int(data[14])<<8+int(data[15]) {
			t.Fatalf("read %d bytes of a header announcing %d", used, 16+int(data[14])<<8+int(data[15]))
		}
		if !info.local && !info.src.IsValid() {
			t.Fatalf("no address and not local: %+v", info)
		}
	})
}

func TestIPCounter(t *testing.T) {
	var c ipCounter
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if !c.acquire(a, 3) {
			t.Fatalf("connection %d refused", i)
		}
	}
	if c.acquire(a, 3) || !c.acquire(b, 3) {
		t.Fatal("limit not per address")
	}
	c.release(a)
	if !c.acquire(a, 3) {
		t.Fatal("released slot not reusable")
	}
	for range 3 {
		c.release(a)
	}
	c.release(b)
	if len(c.n) != 0 {
		t.Fatalf("entries left: %v", c.n)
	}
}

package frontend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt).
var proxySignature = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	proxyCmdLocal  = 0x0
	proxyCmdProxy  = 0x1
	proxyFamInet   = 0x1
	proxyFamInet6  = 0x2
	proxyTypeSSL   = 0x20 // PP2_TYPE_SSL
	proxyClientSSL = 0x01 // PP2_CLIENT_SSL: the client connected over TLS
)

// proxyInfo is what a PROXY header says about the client.
type proxyInfo struct {
	src   netip.Addr // the client's address; invalid for LOCAL or unspecified
	local bool       // a connection of the proxy itself (health check)
	ssl   bool       // the client reached the load balancer over TLS
}

var errProxyHeader = errors.New("invalid PROXY protocol v2 header")

// readProxyHeader reads exactly one PROXY protocol v2 header from r.
func readProxyHeader(r io.Reader) (proxyInfo, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return proxyInfo{}, fmt.Errorf("PROXY header: %w", err)
	}
	if !bytes.Equal(hdr[:12], proxySignature) {
		return proxyInfo{}, fmt.Errorf("%w: no v2 signature (is the load balancer sending PROXY protocol v2?)", errProxyHeader)
	}
	if hdr[12]>>4 != 2 {
		return proxyInfo{}, fmt.Errorf("%w: version %d", errProxyHeader, hdr[12]>>4)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[14:16]))
	if _, err := io.ReadFull(r, body); err != nil {
		return proxyInfo{}, fmt.Errorf("PROXY header: %w", err)
	}
	return parseProxyBody(hdr[12]&0x0f, hdr[13], body)
}

// parseProxyBody decodes the addresses and TLVs after the fixed header.
func parseProxyBody(cmd, fam byte, body []byte) (proxyInfo, error) {
	switch cmd {
	case proxyCmdLocal:
		return proxyInfo{local: true}, nil
	case proxyCmdProxy:
	default:
		return proxyInfo{}, fmt.Errorf("%w: command %d", errProxyHeader, cmd)
	}
	var info proxyInfo
	var tlvs []byte
	switch fam >> 4 {
	case proxyFamInet:
		if len(body) < 12 {
			return info, fmt.Errorf("%w: short IPv4 addresses", errProxyHeader)
		}
		info.src, tlvs = netip.AddrFrom4([4]byte(body[:4])), body[12:]
	case proxyFamInet6:
		if len(body) < 36 {
			return info, fmt.Errorf("%w: short IPv6 addresses", errProxyHeader)
		}
		info.src, tlvs = netip.AddrFrom16([16]byte(body[:16])).Unmap(), body[36:]
	default: // unspecified or unix: the peer's own address stands
		return proxyInfo{local: true}, nil
	}
	info.ssl = clientSSL(tlvs)
	return info, nil
}

// clientSSL reports whether the TLVs carry PP2_TYPE_SSL with the client
// SSL flag. Malformed TLVs are ignored.
func clientSSL(tlvs []byte) bool {
	for len(tlvs) >= 3 {
		typ, n := tlvs[0], int(binary.BigEndian.Uint16(tlvs[1:3]))
		if len(tlvs) < 3+n {
			return false
		}
		if typ == proxyTypeSSL && n >= 1 && tlvs[3]&proxyClientSSL != 0 {
			return true
		}
		tlvs = tlvs[3+n:]
	}
	return false
}

// AppendProxyHeader appends a PROXY protocol v2 header for a TCP connection
// from src to dst, with the SSL TLV when ssl is set. Tests and load
// generators use it to play a load balancer.
func AppendProxyHeader(dst []byte, src, dstAddr netip.AddrPort, ssl bool) []byte {
	var addrs []byte
	fam := byte(proxyFamInet<<4 | 1)
	if src.Addr().Is4() && dstAddr.Addr().Is4() {
		a, b := src.Addr().As4(), dstAddr.Addr().As4()
		addrs = append(append(addrs, a[:]...), b[:]...)
	} else {
		fam = proxyFamInet6<<4 | 1
		a, b := src.Addr().As16(), dstAddr.Addr().As16()
		addrs = append(append(addrs, a[:]...), b[:]...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, dstAddr.Port())
	if ssl {
		addrs = append(addrs, proxyTypeSSL, 0, 5, proxyClientSSL, 0, 0, 0, 0)
	}
	dst = append(dst, proxySignature...)
	dst = append(dst, 0x20|proxyCmdProxy, fam)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(addrs)))
	return append(dst, addrs...)
}

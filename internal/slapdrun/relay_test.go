package slapdrun

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestRelayDelaysAndHolds: bytes arrive no sooner than the delay, in
// order; held bytes arrive only after Release.
func TestRelayDelaysAndHolds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo server
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	const delay = 50 * time.Millisecond
	r, err := NewRelay(func() string { return ln.Addr().String() }, delay)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	start := time.Now()
	c.Write([]byte("hello"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	if took := time.Since(start); took < 2*delay {
		t.Errorf("round trip took %v, want at least %v (delayed both ways)", took, 2*delay)
	}
	r.SetDelay(0)
	r.Hold()
	c.Write([]byte("world"))
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 5)
		io.ReadFull(c, b)
		got <- string(b)
	}()
	select {
	case s := <-got:
		t.Fatalf("held relay passed %q on", s)
	case <-time.After(3 * delay):
	}
	r.Release()
	if s := <-got; s != "world" {
		t.Errorf("after release: %q", s)
	}
}

package slapdrun

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Relay is a TCP relay on 127.0.0.1 that passes bytes on after a delay, in
// both directions, or holds them: it stands on a replication link
// (Options.ReplicationDelay) to make replication slow, or stop it, on
// purpose. Bytes keep their order; a held relay queues what it gets and
// passes it on once released.
type Relay struct {
	Addr string // "127.0.0.1:PORT" it listens on

	ln     net.Listener
	target func() string // the address to connect to, read per connection
	wg     sync.WaitGroup

	mu     sync.Mutex // mu guards the fields below
	delay  time.Duration
	held   bool
	resume chan struct{} // closed at the next Release
	conns  map[net.Conn]struct{}
	closed bool
}

// NewRelay listens on a free port of 127.0.0.1 and relays each connection
// to target() with delay.
func NewRelay(target func() string, delay time.Duration) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("slapdtest: relay: %w", err)
	}
	r := &Relay{Addr: ln.Addr().String(), ln: ln, target: target, delay: delay,
		resume: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.accept)
	return r, nil
}

// SetDelay changes the delay of bytes received from now on.
func (r *Relay) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// Hold stops passing bytes on until Release.
func (r *Relay) Hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = true
}

// Release passes on what was held, and everything after it.
func (r *Relay) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held {
		r.held = false
		close(r.resume)
		r.resume = make(chan struct{})
	}
}

// Close stops the relay and closes its connections.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	if r.held {
		r.held = false
		close(r.resume)
	}
	r.mu.Unlock()
	err := r.ln.Close()
	r.wg.Wait()
	return err
}

func (r *Relay) accept() {
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", r.target(), 5*time.Second)
		if err != nil || !r.track(in, out) {
			in.Close()
			if out != nil {
				out.Close()
			}
			continue
		}
		r.wg.Go(func() { r.pipe(in, out) })
		r.wg.Go(func() { r.pipe(out, in) })
	}
}

// track registers a connection pair, unless the relay is closed.
func (r *Relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

// chunk is bytes read at a time, due for writing at due.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk after the delay; either side ending
// closes both.
func (r *Relay) pipe(src, dst net.Conn) {
	queue := make(chan chunk, 4096)
	r.wg.Go(func() {
		defer dst.Close()
		defer src.Close()
		for c := range queue {
			if !r.wait(c.due) {
				return
			}
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	})
	defer close(queue)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			queue <- chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(r.currentDelay())}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				dst.Close()
			}
			return
		}
	}
}

func (r *Relay) currentDelay() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delay
}

// wait sleeps until due and while the relay is held; false once closed.
func (r *Relay) wait(due time.Time) bool {
	for {
		r.mu.Lock()
		held, resume, closed := r.held, r.resume, r.closed
		r.mu.Unlock()
		if closed {
			return false
		}
		if held {
			<-resume
			continue
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
			continue
		}
		return true
	}
}

// startRelays puts a relay in front of every replica for the others'
// syncrepl consumers (Options.ReplicationDelay).
func (c *Cluster) startRelays() error {
	if c.opts.ReplicationDelay <= 0 || len(c.relays) > 0 {
		return nil
	}
	for _, p := range c.Replicas {
		rl, err := NewRelay(func() string { return p.Addr }, c.opts.ReplicationDelay)
		if err != nil {
			return err
		}
		c.relays = append(c.relays, rl)
		p.replicationURL = "ldap://" + rl.Addr
	}
	return nil
}

// Relays are the relays on the replication links, by replica (Replicas[i]
// serves the others through Relays()[i]); none without
// Options.ReplicationDelay.
func (c *Cluster) Relays() []*Relay { return c.relays }

// closeRelays stops the relays.
func (c *Cluster) closeRelays() error {
	var errs []error
	for _, rl := range c.relays {
		errs = append(errs, rl.Close())
	}
	return errors.Join(errs...)
}

// providerURL is the URL the other replicas replicate r from.
func (r *Replica) providerURL() string {
	if r.replicationURL != "" {
		return r.replicationURL
	}
	return r.URL
}

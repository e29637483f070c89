package replpos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// ReadContextCSN reads the contextCSN of base on one of srv's operation
// connections (bound as the service account): a base-object search, the
// cheapest read of a server's replication position. base "" reads the
// server's first naming context first.
func ReadContextCSN(ctx context.Context, srv *backend.Server, base string) (Vector, error) {
	if base == "" {
		vals, err := readAttr(ctx, srv, "", "namingContexts")
		if err != nil {
			return nil, err
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("replpos: %s lists no naming context", srv.Name)
		}
		base = vals[0]
	}
	vals, err := readAttr(ctx, srv, base, "contextCSN")
	if err != nil {
		return nil, err
	}
	var pos Vector
	for _, v := range vals {
		c, err := ParseCSN([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("replpos: %s: contextCSN %q of %q: %w", srv.Name, v, base, err)
		}
		pos = pos.Merge(c)
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("replpos: %s: %q has no contextCSN the service account can read", srv.Name, base)
	}
	return pos, nil
}

// readAttr reads the values of attr of the entry dn.
func readAttr(ctx context.Context, srv *backend.Server, dn, attr string) ([]string, error) {
	conn, err := srv.Pool().OpConn(ctx)
	if err != nil {
		return nil, err
	}
	r := &attrReader{attr: attr, done: make(chan struct{})}
	timeout := defaultReadTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	id, err := conn.Send(r, func(dst []byte, id int32) []byte {
		return ldapwire.AppendBaseSearch(dst, id, dn, []string{attr}, nil)
	}, timeout)
	if err != nil {
		return nil, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if conn.Abandon(id) { // the handler will hear nothing more
			return nil, fmt.Errorf("replpos: read %s of %q on %s: %w", attr, dn, srv.Name, ctx.Err())
		}
		<-r.done // taken by the reader or a close: its end is on its way
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, fmt.Errorf("replpos: read %s of %q on %s: %w", attr, dn, srv.Name, r.err)
	}
	return r.values, nil
}

const defaultReadTimeout = 5 * time.Second

// attrReader collects one attribute's values from a base search's answer.
type attrReader struct {
	attr string
	done chan struct{}

	mu     sync.Mutex // mu guards the fields below
	values []string
	err    error
	ended  bool
}

// Response implements backend.Handler.
func (r *attrReader) Response(_ []byte, msg ldapwire.Message, final bool) backend.Flusher {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return nil
	}
	if msg.OpTag == ldapwire.OpSearchResultEntry {
		err := ldapwire.EntryValues(msg, func(attr, value []byte) {
			if strings.EqualFold(string(attr), r.attr) {
				r.values = append(r.values, string(value))
			}
		})
		if err != nil {
			r.err = err
		}
	}
	if final {
		if res, err := ldapwire.ParseResult(msg.Body); err != nil {
			r.err = err
		} else if res.Code != ldapwire.Success {
			r.err = fmt.Errorf("result %s: %s", ldapwire.ResultName(res.Code), string(res.Diagnostic))
		}
		r.end()
	}
	return nil
}

// Lost implements backend.Handler.
func (r *attrReader) Lost(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ended {
		r.err = err
		r.end()
	}
}

// end marks the answer complete. Caller must hold mu.
func (r *attrReader) end() {
	r.ended = true
	close(r.done)
}

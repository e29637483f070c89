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

// ReadPosition reads srv's replication position in the way of its type,
// as found at connect: the replica update vector of a 389 Directory
// Server, the contextCSN of others. base is the replicated suffix ("": the
// server's first naming context).
func ReadPosition(ctx context.Context, srv *backend.Server, base string) (Vector, error) {
	if caps := srv.Capabilities(); caps != nil && caps.Type == backend.Type389DS {
		return Read389RUV(ctx, srv, base)
	}
	return ReadContextCSN(ctx, srv, base)
}

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

// Read389RUV reads the replica update vector of suffix (389 Directory
// Server) on one of srv's operation connections: the live RUV of the
// suffix's replica configuration entry, which the service account needs
// the right to read, else the copy on the RUV tombstone entry. suffix ""
// reads the server's first naming context first.
func Read389RUV(ctx context.Context, srv *backend.Server, suffix string) (Vector, error) {
	if suffix == "" {
		vals, err := readAttr(ctx, srv, "", "namingContexts")
		if err != nil {
			return nil, err
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("replpos: %s lists no naming context", srv.Name)
		}
		suffix = vals[0]
	}
	filter := andFilter(equalityFilter("objectClass", "nsds5replica"), equalityFilter("nsds5replicaRoot", suffix))
	vals, err := search(ctx, srv, ReplicaConfigBase, ldapwire.ScopeSub, filter, "nsds50ruv")
	if err != nil || len(vals) == 0 {
		tomb := RUVTombstone(suffix)
		vals, err = search(ctx, srv, tomb, ldapwire.ScopeBase, equalityFilter("objectClass", "nsTombstone"), "nsds50ruv")
		if err != nil {
			return nil, err
		}
	}
	pos, err := ParseRUV(vals)
	if err != nil {
		return nil, fmt.Errorf("replpos: %s: replica update vector of %q (the service account needs read access to nsds50ruv in %s): %w",
			srv.Name, suffix, ReplicaConfigBase, err)
	}
	return pos, nil
}

// equalityFilter is the filter (attr=value), encoded.
func equalityFilter(attr, value string) []byte {
	var b []byte
	b = ldapwire.AppendElement(b, 0x04, []byte(attr))
	b = ldapwire.AppendElement(b, 0x04, []byte(value))
	return ldapwire.AppendElement(nil, ldapwire.FilterEqual, b)
}

// andFilter is the filter (&f...), encoded.
func andFilter(fs ...[]byte) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, f...)
	}
	return ldapwire.AppendElement(nil, ldapwire.FilterAnd, b)
}

// appendSearch appends a search of base for attr with scope and filter
// (encoded).
func appendSearch(dst []byte, id int32, base string, scope int, filter []byte, attr string) []byte {
	var body []byte
	body = ldapwire.AppendElement(body, 0x04, []byte(base))
	body = ldapwire.AppendInteger(body, 0x0a, int64(scope))
	body = ldapwire.AppendInteger(body, 0x0a, 0) // neverDerefAliases
	body = ldapwire.AppendInteger(body, 0x02, 0) // sizeLimit
	body = ldapwire.AppendInteger(body, 0x02, 0) // timeLimit
	body = append(body, 0x01, 1, 0)              // typesOnly FALSE
	body = append(body, filter...)
	body = ldapwire.AppendElement(body, 0x30, ldapwire.AppendElement(nil, 0x04, []byte(attr)))
	return ldapwire.AppendMessage(dst, id, ldapwire.AppendElement(nil, ldapwire.OpSearchRequest, body), nil, nil)
}

// readAttr reads the values of attr of the entry dn.
func readAttr(ctx context.Context, srv *backend.Server, dn, attr string) ([]string, error) {
	return send(ctx, srv, dn, attr, func(dst []byte, id int32) []byte {
		return ldapwire.AppendBaseSearch(dst, id, dn, []string{attr}, nil)
	})
}

// search reads the values of attr of the entries a search finds.
func search(ctx context.Context, srv *backend.Server, base string, scope int, filter []byte, attr string) ([]string, error) {
	return send(ctx, srv, base, attr, func(dst []byte, id int32) []byte {
		return appendSearch(dst, id, base, scope, filter, attr)
	})
}

// send sends the search encode makes and collects the values of attr of
// the entries it finds.
func send(ctx context.Context, srv *backend.Server, dn, attr string, encode func(dst []byte, id int32) []byte) ([]string, error) {
	conn, err := srv.Pool().OpConn(ctx)
	if err != nil {
		return nil, err
	}
	r := &attrReader{attr: attr, done: make(chan struct{})}
	timeout := defaultReadTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	id, err := conn.Send(r, encode, timeout)
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

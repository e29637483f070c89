package route

import (
	"container/list"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// AffinityKind says which operations count as one client's.
type AffinityKind int

// Affinity kinds.
const (
	ByConnection AffinityKind = iota + 1 // one client connection
	ByClientIP                           // one client address
	ByBindDN                             // one bound identity (anonymous clients have none)
)

var affinityKinds = map[string]AffinityKind{
	"client-connection": ByConnection, "client-ip": ByClientIP, "bind-dn": ByBindDN,
}

func (k AffinityKind) String() string {
	for name, kind := range affinityKinds {
		if kind == k {
			return name
		}
	}
	return "none"
}

// ParseAffinityKind reads an affinity type keyword.
func ParseAffinityKind(s string) (AffinityKind, error) {
	if k, ok := affinityKinds[s]; ok {
		return k, nil
	}
	return 0, fmt.Errorf("route: unknown affinity type %q (use client-connection, client-ip or bind-dn)", s)
}

// Affinity sends a client's operations to the server that answered it
// recently, as long as that server is among the operation's candidates.
//
// Per proxy (the default), an operation of a kind in After records which
// server answered it, and the client's operations go there for Duration.
//
// Consistent mode keeps no state: every operation of a client goes to the
// server that rendezvous hashing of its identity picks among the best
// candidates (same location tier and state as the first), so independent
// proxies with the same configuration and the same view of server health
// agree without talking to each other.
//
// Until replicated (per proxy), a client's successful writes are recorded
// with their replication positions (RecordWrite) and its reads go only to
// candidates known to have applied them (replicated.go).
type Affinity struct {
	Kind            AffinityKind
	Consistent      bool
	UntilReplicated bool
	MaxWait         time.Duration // until replicated: longest wait for fresher positions
	// LostWriteTimeout: until replicated, how long reads are refused while
	// the writer is unusable and nobody else has the write (0: no end).
	LostWriteTimeout time.Duration
	Duration         time.Duration
	After            OpSet          // operations that set affinity (per-proxy mode)
	Table            *AffinityTable // per-proxy mode; survives router reloads
	TierOf           []int          // location tier by snapshot index (consistent mode)
}

// apply moves the client's affinity server to the front of cands and
// reports whether it did.
func (a *Affinity) apply(snap *backend.Snapshot, v *view, cands []int, now time.Time) bool {
	if len(cands) == 0 || a.UntilReplicated {
		return false
	}
	var want string
	if a.Consistent {
		h, ok := a.identityHash(v)
		if !ok {
			return false
		}
		want = snap.Servers[a.rendezvous(snap, h, cands)].Name
	} else {
		k, dn, ok := a.key(v)
		if !ok {
			return false
		}
		if want, ok = a.Table.Get(k, dn, now); !ok {
			return false
		}
	}
	return toFront(snap, cands, want)
}

// record remembers who answered an operation that sets affinity.
func (a *Affinity) record(v *view, server string, now time.Time) {
	if !a.records(v.op) {
		return
	}
	if k, dn, ok := a.key(v); ok {
		a.Table.Set(k, dn, server, now, now.Add(a.Duration))
	}
}

// records reports whether op is of a kind that sets affinity.
func (a *Affinity) records(op *Operation) bool { return !a.Consistent && a.After.Has(op.Tag) }

// toFront moves the candidate named name to the front, keeping the order of
// the others. It reports false when name is not a candidate.
func toFront(snap *backend.Snapshot, cands []int, name string) bool {
	for i, s := range cands {
		if snap.Servers[s].Name == name {
			copy(cands[1:i+1], cands[:i])
			cands[0] = s
			return true
		}
	}
	return false
}

// affinityKey and a normalised bind DN identify a client. The DN travels
// apart, as bytes in the caller's buffer: sharing a struct with ip, which
// tables keep, would make escape analysis move that buffer to the heap.
type affinityKey struct {
	kind AffinityKind
	conn uint64
	ip   netip.Addr
}

// tableKey is how an AffinityTable stores a client's key.
type tableKey struct {
	affinityKey
	dn string
}

// key identifies the client of v; dn is set for ByBindDN.
func (a *Affinity) key(v *view) (k affinityKey, dn []byte, ok bool) {
	k.kind = a.Kind
	switch a.Kind {
	case ByConnection:
		k.conn = v.op.ConnID
		return k, nil, true
	case ByClientIP:
		k.ip = v.op.ClientIP
		return k, nil, k.ip.IsValid()
	case ByBindDN:
		id, ok := v.identity()
		if ok {
			dn = id.text()
		}
		return k, dn, ok
	}
	return k, nil, false
}

// identityHash hashes the client identity in consistent mode: the text of
// its connection number, its address or its normalised bind DN.
func (a *Affinity) identityHash(v *view) (uint64, bool) {
	k, dn, ok := a.key(v)
	if !ok {
		return 0, false
	}
	var buf [64]byte
	switch a.Kind {
	case ByConnection:
		return fnv(fnvOffset, strconv.AppendUint(buf[:0], k.conn, 10)), true
	case ByClientIP:
		return fnv(fnvOffset, k.ip.Unmap().AppendTo(buf[:0])), true
	}
	return fnv(fnvOffset, dn), true
}

// rendezvous picks, among the candidates of the same tier and state as the
// first, the one with the highest hash of (identity, server name), h being
// the identity's: highest random weight hashing. Removing a server only
// moves the clients it had.
func (a *Affinity) rendezvous(snap *backend.Snapshot, h uint64, cands []int) int {
	group := a.standing(snap, cands[0])
	best, bestScore := cands[0], uint64(0)
	for _, s := range cands {
		if a.standing(snap, s) != group {
			continue
		}
		if score := mix(fnv(fnv(h, "\x00"), snap.Servers[s].Name)); score >= bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// standing combines a server's location tier and state.
func (a *Affinity) standing(snap *backend.Snapshot, s int) [2]int {
	tier := 0
	if s < len(a.TierOf) {
		tier = a.TierOf[s]
	}
	return [2]int{tier, int(snap.Servers[s].Health.State)}
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnv continues a 64-bit FNV-1a hash with s. It is fixed by its
// specification, so every proxy instance computes the same values.
func fnv[T bytesOrString](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is the splitmix64 finaliser, spreading FNV's weak low bits.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// DefaultAffinityEntries bounds an AffinityTable made with size 0.
const DefaultAffinityEntries = 100000

// AffinityTable remembers which server each client last used, until an
// expiry time. It holds at most a fixed number of entries, dropping the
// least recently recorded first, and is safe for concurrent use. Build it
// once and hand it to every Router built on reload, so that affinity
// survives reloads.
type AffinityTable struct {
	max int
	// Positions are the servers' replication positions, for affinity
	// until replicated; set once before the table is used.
	Positions Positions
	// Stats count what affinity until replicated did.
	Stats ReplicatedStats

	mu    sync.Mutex // mu guards the fields below
	items map[tableKey]*list.Element
	order list.List // of *affinityEntry, least recently recorded first
}

type affinityEntry struct {
	key    tableKey
	server string
	until  time.Time
	write  Write // until replicated; write.At is zero for entries of a duration
}

// NewAffinityTable makes a table of at most max entries (0: the default).
func NewAffinityTable(max int) *AffinityTable {
	if max <= 0 {
		max = DefaultAffinityEntries
	}
	return &AffinityTable{max: max, items: map[tableKey]*list.Element{}}
}

// Get returns the server recorded for the client (k, dn), unless it
// expired by now.
func (t *AffinityTable) Get(k affinityKey, dn []byte, now time.Time) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.find(k, dn)
	if !ok {
		return "", false
	}
	e := el.Value.(*affinityEntry)
	if !now.Before(e.until) {
		t.remove(el)
		return "", false
	}
	return e.server, true
}

// Set records server for the client (k, dn) until the given time, then
// drops the entries expired by now and any beyond the size limit.
func (t *AffinityTable) Set(k affinityKey, dn []byte, server string, now, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.find(k, dn); ok {
		e := el.Value.(*affinityEntry)
		e.server, e.until = server, until
		t.order.MoveToBack(el)
	} else {
		tk := tableKey{k, string(dn)}
		t.items[tk] = t.order.PushBack(&affinityEntry{key: tk, server: server, until: until})
	}
	t.trim(now)
}

// find looks a client up. Converting dn inside the index expression lets
// the compiler skip the copy. Caller must hold mu.
func (t *AffinityTable) find(k affinityKey, dn []byte) (*list.Element, bool) {
	el, ok := t.items[tableKey{k, string(dn)}]
	return el, ok
}

// trim drops the least recently recorded entries while they are expired or
// the table is too big. With one duration for all entries, the oldest
// expire first. Caller must hold mu.
func (t *AffinityTable) trim(now time.Time) {
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		if t.order.Len() <= t.max && now.Before(el.Value.(*affinityEntry).until) {
			return
		}
		t.remove(el)
	}
}

// remove drops one entry. Caller must hold mu.
func (t *AffinityTable) remove(el *list.Element) {
	delete(t.items, el.Value.(*affinityEntry).key)
	t.order.Remove(el)
}

// Len is the number of entries held, expired ones included.
func (t *AffinityTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
}

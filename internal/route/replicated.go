package route

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/replpos"
)

// Positions is what affinity until replicated knows of the servers'
// replication positions, by snapshot index (replpos.Tracker).
type Positions interface {
	// Covers reports whether server is known to have every change of
	// need, and when what is known of it was read (zero: never).
	Covers(server int, need replpos.Vector) (bool, time.Time)
	// Position appends server's known position to dst.
	Position(server int, dst replpos.Vector) (replpos.Vector, time.Time)
	// Refresh returns a channel closed once a read of server's position
	// that started at or after after has ended.
	Refresh(server int, after time.Time) <-chan struct{}
}

// Write is what a client's successful writes require of a server that
// answers its reads.
type Write struct {
	Server int            // snapshot index of the server that took the last one
	At     time.Time      // when its success was recorded
	Need   replpos.Vector // changes the server must have, one CSN per serverID
	// WriterSID is the serverID of Server's own changes, -1 when unknown.
	WriterSID int
	// Unknown: the last write's CSN was not returned; the writer's
	// position read after At stands for it.
	Unknown bool
}

// PositionWait is how a read of a client that wrote waits for fresher
// replication positions. Candidates sets Servers when the candidates it
// would rather use may have the write without the proxy knowing yet; the
// proxy then calls AwaitPositions and Candidates again, with Forced set
// once the wait is over.
type PositionWait struct {
	Servers uint64 // snapshot indexes (below 64) whose position to read again
	// After: reads must have started at or after this. Given back to
	// Candidates after a wait, positions read since then count as fresh.
	After  time.Time
	Forced bool // the wait is over: place the read with what is known
	// Budget is how long the wait may last: max-wait when no candidate
	// is known to have the write, PositionReadBudget when one is.
	Budget time.Duration
	// Lost names the server that took the client's last write when no
	// candidate has it (that server is unusable): the read is refused.
	Lost string
	// GaveUp names that server when it has been unusable for longer than
	// lost-write-timeout: the write is forgotten, the read placed as
	// anyone's, and the proxy logs that the client may not see its write.
	GaveUp string
}

// ReplicatedStats count what affinity until replicated did. They survive
// reloads with the table.
type ReplicatedStats struct {
	Waited     atomic.Int64 // reads that waited for fresher positions
	ToWriter   atomic.Int64 // reads sent to the writer: no other candidate had the write
	Elsewhere  atomic.Int64 // reads of a client that wrote sent to a server other than its writer
	Refused    atomic.Int64 // reads refused: the writer is unusable and nobody else has the write
	Lost       atomic.Int64 // writes given up: their writer was unusable past lost-write-timeout
	Replicated atomic.Int64 // clients freed: every candidate had their write
}

// PositionReadBudget bounds the wait for fresher positions when a
// candidate (the writer) is already known to have the write: reading a
// replica's contextCSN usually takes a millisecond, but a replica applying
// changes may take far longer to answer, and the writer is a fine answer.
const PositionReadBudget = 10 * time.Millisecond

// positionsFresh is how long a position read after a write is trusted to
// say that a server lacks it, before it is read again.
const positionsFresh = 10 * time.Millisecond

// placeRead keeps, of the candidates for a read, those known to have the
// client's last writes, and asks for a wait (v.op.Await) when it should
// know more first. It reports whether it left out any candidate.
func (a *Affinity) placeRead(snap *backend.Snapshot, v *view, cands []int, now time.Time) ([]int, bool) {
	if !OpRead.Has(v.op.Tag) {
		return cands, false
	}
	k, dn, ok := a.key(v)
	if !ok || !a.Table.HasWrite(k, dn) { // the one lookup a client that never wrote pays
		return cands, false
	}
	return a.placeAfterWrite(snap, v, cands, now, k, dn)
}

// placeAfterWrite places a read of a client whose writes are recorded.
func (a *Affinity) placeAfterWrite(snap *backend.Snapshot, v *view, cands []int, now time.Time, k affinityKey, dn []byte) ([]int, bool) {
	var buf [8]replpos.CSN
	w := Write{Need: buf[:0]}
	if !a.Table.GetWrite(k, dn, &w) {
		return cands, false
	}
	pos := a.Table.Positions
	if w.Unknown {
		a.resolve(k, dn, &w)
	}
	wait := &v.op.Await
	after := later(w.At, now.Add(-positionsFresh))
	if !wait.After.IsZero() && wait.After.Before(after) {
		after = later(w.At, wait.After) // what the last wait read is fresh enough
	}
	wait.After = after
	var has, stale uint64 // by position in cands
	for i, s := range cands[:min(len(cands), 64)] {
		switch {
		case s == w.Server && a.writerHas(&w):
			has |= 1 << i
		case s == w.Server, w.Unknown:
		default:
			h, at := pos.Covers(s, w.Need)
			if h {
				has |= 1 << i
			} else if at.Before(wait.After) && s < 64 {
				stale |= 1 << s
			}
		}
	}
	if len(cands) > 0 && len(cands) <= 64 && has == 1<<len(cands)-1 && !w.Unknown && a.everywhere(snap, &w) {
		if a.Table.ForgetWrite(k, dn, w.At) {
			a.Table.Stats.Replicated.Add(1)
		}
		return cands, false
	}
	if w.Unknown && has != 0 {
		pos.Refresh(w.Server, w.At) // resolved by a later read
	}
	if has&1 == 0 && !wait.Forced {
		if has == 0 && !w.Unknown { // nobody has it: read everyone again until the wait ends
			stale, wait.After = serverMask(cands), now
		}
		if stale != 0 {
			wait.Servers, wait.Budget = stale, a.MaxWait
			if has != 0 {
				wait.Budget = min(a.MaxWait, PositionReadBudget)
			}
			return cands, false
		}
	}
	if kept := a.keepHaving(snap, cands, has, &w); len(kept) > 0 {
		return kept, true
	}
	return a.noneHas(snap, cands, &w, wait, now, k, dn)
}

// noneHas places a read of a client whose last write no candidate is known
// to have, the wait for fresher positions being over. The writer is not a
// candidate: when it is usable (another route's server), the read goes to
// the candidates; when it is down, the read is refused (wait.Lost) until
// the writer has been down for LostWriteTimeout, after which the write is
// counted as lost to the client (wait.GaveUp) and forgotten.
func (a *Affinity) noneHas(snap *backend.Snapshot, cands []int, w *Write, wait *PositionWait, now time.Time, k affinityKey, dn []byte) ([]int, bool) {
	stats := &a.Table.Stats
	name := "#" + strconv.Itoa(w.Server)
	var writer *backend.ServerView
	if w.Server < len(snap.Servers) {
		writer = &snap.Servers[w.Server]
		name = writer.Name
	}
	switch {
	case writer != nil && writer.Usable():
		stats.Elsewhere.Add(1)
		return cands, false
	case a.LostWriteTimeout > 0 && writer != nil && now.Sub(writer.Health.Since) >= a.LostWriteTimeout:
		a.Table.ForgetWrite(k, dn, w.At)
		stats.Lost.Add(1)
		wait.GaveUp = name
		return cands, false
	}
	stats.Refused.Add(1)
	wait.Lost = name
	return cands[:0], true
}

// everywhere reports whether every usable server, candidate of this read
// or not (another route may use it), is known to have the writes.
func (a *Affinity) everywhere(snap *backend.Snapshot, w *Write) bool {
	for s := range snap.Servers {
		if !snap.Servers[s].Usable() {
			continue
		}
		if s == w.Server {
			if !a.writerHas(w) {
				return false
			}
		} else if has, _ := a.Table.Positions.Covers(s, w.Need); !has {
			return false
		}
	}
	return true
}

// writerHas reports whether the server that took the client's last write
// has the changes required: its own write, and the client's earlier writes
// on other servers as far as its known position says.
func (a *Affinity) writerHas(w *Write) bool {
	var buf [8]replpos.CSN
	p, _ := a.Table.Positions.Position(w.Server, buf[:0])
	for _, c := range w.Need {
		if c.SID != w.WriterSID && !p.Has(c) {
			return false
		}
	}
	return true
}

// keepHaving leaves in cands, in order, the candidates whose bit is set in
// has, or else the writer when it is a candidate, counting where the read
// goes; it leaves none when neither is (cands is then unchanged).
func (a *Affinity) keepHaving(snap *backend.Snapshot, cands []int, has uint64, w *Write) []int {
	kept, writer := cands[:0], -1
	for i, s := range cands {
		if i < 64 && has&(1<<i) != 0 {
			kept = append(kept, s)
		} else if s == w.Server {
			writer = s
		}
	}
	if len(kept) == 0 && writer >= 0 { // unproven, but the best there is
		kept = append(kept, writer)
	}
	stats := &a.Table.Stats
	switch {
	case len(kept) == 0:
	case kept[0] == w.Server:
		stats.ToWriter.Add(1)
	default:
		stats.Elsewhere.Add(1)
	}
	return kept
}

// resolve replaces an unknown CSN by the writer's position once one was
// read after the write.
func (a *Affinity) resolve(k affinityKey, dn []byte, w *Write) {
	var buf [8]replpos.CSN
	p, at := a.Table.Positions.Position(w.Server, buf[:0])
	if at.Before(w.At) {
		return
	}
	for _, c := range p {
		w.Need = w.Need.Merge(c)
	}
	w.Unknown = false
	a.Table.ResolveWrite(k, dn, w.At, p)
}

// serverMask is the set of the candidates' snapshot indexes below 64.
func serverMask(cands []int) uint64 {
	var m uint64
	for _, s := range cands {
		if s < 64 {
			m |= 1 << s
		}
	}
	return m
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// RecordWrite records that server (a snapshot index) applied a successful
// write of op with change sequence number csn (known false: the server did
// not say). The client's reads then go only to servers that have it.
func (r *Router) RecordWrite(op *Operation, server int, csn replpos.CSN, known bool, now time.Time) {
	a := r.Affinity
	if a == nil || !a.UntilReplicated || !OpWrite.Has(op.Tag) {
		return
	}
	var dns viewDNs
	if k, dn, ok := a.key(&view{op: op, dns: &dns}); ok {
		a.Table.SetWrite(k, dn, server, csn, known, now)
	}
}

// RecordsWrites reports whether op's success must be recorded with its
// change sequence number (RecordWrite).
func (r *Router) RecordsWrites(op *Operation) bool {
	return r.Affinity != nil && r.Affinity.UntilReplicated && OpWrite.Has(op.Tag)
}

// MaxWait is how long a read may wait for fresher replication positions.
func (r *Router) MaxWait() time.Duration {
	if r.Affinity == nil {
		return 0
	}
	return r.Affinity.MaxWait
}

// NoteWaited counts a read that waits for positions.
func (r *Router) NoteWaited() { r.Affinity.Table.Stats.Waited.Add(1) }

// AwaitPositions reads again the positions w asks for and waits until
// those reads ended or deadline passed; it reports false at the deadline.
func (r *Router) AwaitPositions(w *PositionWait, deadline time.Time) bool {
	pos := r.Affinity.Table.Positions
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for s := 0; s < 64; s++ {
		if w.Servers&(1<<s) == 0 {
			continue
		}
		select {
		case <-pos.Refresh(s, w.After):
		case <-timer.C:
			return false
		}
	}
	return true
}

// SetWrite records a successful write of the client (k, dn) on server.
func (t *AffinityTable) SetWrite(k affinityKey, dn []byte, server int, csn replpos.CSN, known bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.find(k, dn)
	var e *affinityEntry
	if ok {
		e = el.Value.(*affinityEntry)
		t.order.MoveToBack(el)
	} else {
		tk := tableKey{k, string(dn)}
		e = &affinityEntry{key: tk}
		t.items[tk] = t.order.PushBack(e)
	}
	if e.write.At.IsZero() { // new, or left by affinity of a duration
		e.write = Write{Need: e.write.Need[:0], WriterSID: -1}
	}
	e.until = forever
	sameServer := e.write.Server == server && !e.write.At.IsZero()
	e.write.Server, e.write.At, e.write.Unknown = server, now, !known || e.write.Unknown && !sameServer
	switch {
	case known:
		e.write.WriterSID = csn.SID
	case !sameServer:
		e.write.WriterSID = -1
	}
	if known {
		e.write.Need = e.write.Need.Merge(csn)
	}
	t.trim(now)
}

// forever keeps entries of affinity until replicated from expiring.
var forever = time.Unix(1<<62, 0)

// HasWrite reports whether the client (k, dn) has writes recorded.
func (t *AffinityTable) HasWrite(k affinityKey, dn []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.find(k, dn)
	return ok && !el.Value.(*affinityEntry).write.At.IsZero()
}

// GetWrite copies the client's write record into w (appending to w.Need).
func (t *AffinityTable) GetWrite(k affinityKey, dn []byte, w *Write) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.find(k, dn)
	if !ok {
		return false
	}
	e := el.Value.(*affinityEntry)
	if e.write.At.IsZero() {
		return false
	}
	need := append(w.Need, e.write.Need...)
	*w = e.write
	w.Need = need
	return true
}

// ResolveWrite adds pos, the writer's position read after the write
// recorded at at, to the client's requirement, unless a later write
// replaced it.
func (t *AffinityTable) ResolveWrite(k affinityKey, dn []byte, at time.Time, pos replpos.Vector) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.find(k, dn)
	if !ok {
		return
	}
	e := el.Value.(*affinityEntry)
	if !e.write.At.Equal(at) || !e.write.Unknown {
		return
	}
	for _, c := range pos {
		e.write.Need = e.write.Need.Merge(c)
	}
	e.write.Unknown = false
}

// ForgetWrite drops the client's record, unless a later write replaced the
// one recorded at at; it reports whether it did.
func (t *AffinityTable) ForgetWrite(k affinityKey, dn []byte, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.find(k, dn)
	if !ok || !el.Value.(*affinityEntry).write.At.Equal(at) {
		return false
	}
	t.remove(el)
	return true
}

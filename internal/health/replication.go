package health

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/replpos"
)

// CSN is an OpenLDAP change sequence number (see replpos.CSN).
type CSN = replpos.CSN

// ParseCSN parses a CSN; the fraction of seconds may be missing (older
// servers).
func ParseCSN(s string) (CSN, error) {
	parts := strings.Split(s, "#")
	if len(parts) != 4 {
		return CSN{}, fmt.Errorf("invalid CSN %q: want time#count#sid#mod", s)
	}
	t, err := parseGeneralizedTime(parts[0])
	if err != nil {
		return CSN{}, fmt.Errorf("invalid CSN %q: %w", s, err)
	}
	var n [3]int64
	for i, p := range parts[1:] {
		if n[i], err = strconv.ParseInt(p, 16, 64); err != nil {
			return CSN{}, fmt.Errorf("invalid CSN %q: %w", s, err)
		}
	}
	return CSN{Time: t, Count: int(n[0]), SID: int(n[1]), Mod: int(n[2])}, nil
}

// parseGeneralizedTime parses YYYYmmddHHMMSS[.fraction]Z.
func parseGeneralizedTime(s string) (time.Time, error) {
	for _, layout := range []string{"20060102150405.999999999Z", "20060102150405Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q (want YYYYmmddHHMMSS.uuuuuuZ)", s)
}

// Lag is how far a server is behind the others.
type Lag struct {
	Behind bool          // some change seen elsewhere is missing here
	Age    time.Duration // age of the oldest missing change
	SID    int           // serverID of that change
}

// maxSeen bounds the changes remembered per serverID; beyond it the
// oldest are forgotten, which can only understate very old backlogs.
const maxSeen = 10000

// seenCSN is a CSN and when the proxy first saw it on any server.
type seenCSN struct {
	csn CSN
	at  time.Time
}

// replica is what the view knows of one server.
type replica struct {
	csns      map[int]CSN // newest per serverID, from the last successful read
	live      bool        // the last read succeeded
	attempted bool        // a first read ended, successfully or not
}

// ReplicationView is shared by the replication-backlog checks of one
// configured check: each server reports its contextCSN values, and each is
// compared with the newest values of the live servers.
//
// The age of a server's backlog is the age of the oldest change it is
// missing. For each serverID it lags on, that change is estimated as the
// first CSN the proxy saw (on any server) after the server's own; its age
// is the larger of the difference of CSN timestamps (newest seen minus that
// change) and the time since the proxy first saw it, so a server missing
// only the last change before a quiet period still ages, and normal
// replication latency is not mistaken for an old backlog.
type ReplicationView struct {
	servers int           // how many servers share the view
	ready   chan struct{} // closed once every server's first read ended

	mu       sync.Mutex // mu guards the fields below
	replicas map[int]*replica
	seen     map[int][]seenCSN // per serverID, oldest first
	pending  int               // servers whose first read has not ended
	observe  func(server int, csns []CSN, at time.Time)
}

// Observe makes every successful read of a server's contextCSN also go to
// fn (read-your-writes routing keeps its own copy of the positions). fn is
// called without the view's lock held.
func (v *ReplicationView) Observe(fn func(server int, csns []CSN, at time.Time)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.observe = fn
}

// NewReplicationView prepares a view shared by n servers.
func NewReplicationView(n int) *ReplicationView {
	v := &ReplicationView{servers: n, ready: make(chan struct{}), replicas: map[int]*replica{}, seen: map[int][]seenCSN{}, pending: n}
	if n == 0 {
		close(v.ready)
	}
	return v
}

// Report records server's contextCSN values, read at now.
func (v *ReplicationView) Report(server int, csns []CSN, now time.Time) {
	if fn := v.observer(); fn != nil {
		fn(server, csns, now)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	r := v.replica(server)
	r.csns, r.live = map[int]CSN{}, true
	for _, c := range csns {
		if old, ok := r.csns[c.SID]; !ok || c.After(old) {
			r.csns[c.SID] = c
		}
	}
	for _, c := range r.csns {
		v.record(c, now)
	}
	v.prune()
}

func (v *ReplicationView) observer() func(int, []CSN, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.observe
}

// Lost records that server could not be read.
func (v *ReplicationView) Lost(server int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.replica(server).live = false
}

// replica returns the record of server, counting its first read. Caller
// must hold mu.
func (v *ReplicationView) replica(server int) *replica {
	r := v.replicas[server]
	if r == nil {
		r = &replica{}
		v.replicas[server] = r
	}
	if !r.attempted {
		r.attempted = true
		if v.pending--; v.pending == 0 {
			close(v.ready)
		}
	}
	return r
}

// record remembers c if it is the newest seen of its serverID. Caller must
// hold mu.
func (v *ReplicationView) record(c CSN, now time.Time) {
	s := v.seen[c.SID]
	if len(s) > 0 && !c.After(s[len(s)-1].csn) {
		return
	}
	if len(s) >= maxSeen {
		s = s[1:]
	}
	v.seen[c.SID] = append(s, seenCSN{csn: c, at: now})
}

// prune forgets the changes every server that ever reported has. Caller
// must hold mu.
func (v *ReplicationView) prune() {
	for sid, s := range v.seen {
		floor, ok := v.floor(sid)
		if !ok {
			continue
		}
		i := 0
		for i < len(s)-1 && !s[i].csn.After(floor) {
			i++
		}
		v.seen[sid] = s[i:]
	}
}

// floor is the oldest of the servers' newest CSNs of sid; ok is false when
// a server that reported has none. Caller must hold mu.
func (v *ReplicationView) floor(sid int) (floor CSN, ok bool) {
	first := true
	for _, r := range v.replicas {
		if r.csns == nil {
			continue
		}
		c, has := r.csns[sid]
		if !has {
			return CSN{}, false
		}
		if first || floor.After(c) {
			floor, first = c, false
		}
	}
	return floor, !first
}

// WaitFirstRound waits until every server's first read ended or ctx ends,
// so that a server is not judged before the others could be compared.
func (v *ReplicationView) WaitFirstRound(ctx context.Context) {
	select {
	case <-v.ready:
	case <-ctx.Done():
	}
}

// Backlog returns how far server is behind the newest changes of the live
// servers, at now.
func (v *ReplicationView) Backlog(server int, now time.Time) Lag {
	v.mu.Lock()
	defer v.mu.Unlock()
	mine := v.replicas[server]
	var lag Lag
	for sid, newest := range v.newest() {
		own, has := CSN{}, false
		if mine != nil {
			own, has = mine.csns[sid]
		}
		if has && !newest.After(own) {
			continue
		}
		if age := v.missingAge(sid, own, has, newest, now); !lag.Behind || age > lag.Age {
			lag = Lag{Behind: true, Age: age, SID: sid}
		}
	}
	return lag
}

// newest is the newest CSN of each serverID among the live servers.
// Caller must hold mu.
func (v *ReplicationView) newest() map[int]CSN {
	out := map[int]CSN{}
	for _, r := range v.replicas {
		if !r.live {
			continue
		}
		for sid, c := range r.csns {
			if old, ok := out[sid]; !ok || c.After(old) {
				out[sid] = c
			}
		}
	}
	return out
}

// missingAge is the age of the oldest change of sid after own (any change
// if the server has none of sid). Caller must hold mu.
func (v *ReplicationView) missingAge(sid int, own CSN, has bool, newest CSN, now time.Time) time.Duration {
	first := seenCSN{csn: newest, at: now}
	for _, s := range v.seen[sid] {
		if !has || s.csn.After(own) {
			first = s
			break
		}
	}
	return max(newest.Time.Sub(first.csn.Time), now.Sub(first.at), 0)
}

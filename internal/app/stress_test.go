package app

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// TestPipelinedOperationsWithAbandons stresses the per-operation state that
// the proxy recycles: clients pipeline searches, abandon some of them at
// random (often while their answer is already on its way) and check every
// response. A response under a message ID that is not outstanding, a wrong
// entry count or a missing answer means state leaked from one operation to
// another or an operation was lost.
func TestPipelinedOperationsWithAbandons(t *testing.T) {
	const entries, clients, perClient = 3, 8, 1500
	fake := startFake(t, entries)
	addr := startBenchProxy(t, fake, "fewest-operations")
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runPipelinedClient(t, addr, entries, perClient, uint64(i))
		}()
	}
	wg.Wait()
}

// pipelined is one client's view of its outstanding operations.
type pipelined struct {
	mu        sync.Mutex
	cond      *sync.Cond
	entries   map[int32]int  // outstanding ID → entries received
	abandoned map[int32]bool // outstanding IDs the client abandoned
	answered  int            // operations completed with their full answer
	failure   string
}

func runPipelinedClient(t *testing.T, addr string, entries, total int, seed uint64) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(2 * time.Minute))
	st := &pipelined{entries: map[int32]int{}, abandoned: map[int32]bool{}}
	st.cond = sync.NewCond(&st.mu)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		st.read(nc, entries)
	}()
	abandons := st.write(nc, total, rand.New(rand.NewPCG(seed, 7)))
	st.mu.Lock()
	for len(st.entries) > len(st.abandoned) && st.failure == "" {
		st.cond.Wait() // the reader signals each end; the conn deadline bounds it
	}
	failure, answered := st.failure, st.answered
	st.mu.Unlock()
	nc.Close()
	<-readDone
	if failure != "" {
		t.Error(failure)
	}
	if answered < total-abandons || answered > total {
		t.Errorf("answered %d of %d searches (%d abandoned)", answered, total, abandons)
	}
}

// write sends total searches, at most 16 outstanding, and abandons about
// one in five of the latest ones. It returns how many abandons it sent.
func (st *pipelined) write(nc net.Conn, total int, rng *rand.Rand) int {
	var buf []byte
	abandons := 0
	for id := int32(1); id <= int32(total); id++ {
		st.mu.Lock()
		for len(st.entries)-len(st.abandoned) >= 16 && st.failure == "" {
			st.cond.Wait()
		}
		if st.failure != "" {
			st.mu.Unlock()
			return abandons
		}
		st.entries[id] = 0
		buf = ldapwire.AppendRootDSEProbe(buf[:0], id)
		var target int32
		if rng.IntN(5) == 0 {
			target = id - int32(rng.IntN(4))
			if _, open := st.entries[target]; open && !st.abandoned[target] {
				st.abandoned[target] = true
				abandons++
				buf = ldapwire.AppendAbandon(buf, id+int32(total), target)
			}
		}
		st.mu.Unlock()
		if _, err := nc.Write(buf); err != nil {
			st.fail("write: " + err.Error())
			return abandons
		}
	}
	return abandons
}

// read checks every response against the outstanding operations.
func (st *pipelined) read(nc net.Conn, entries int) {
	r := ldapwire.NewReader(nc, 0)
	for {
		frame, err := r.Next()
		if err != nil {
			st.mu.Lock()
			if len(st.entries) > len(st.abandoned) && st.failure == "" {
				st.failure = "read: " + err.Error()
			}
			st.cond.Broadcast()
			st.mu.Unlock()
			return
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			st.fail("bad response: " + err.Error())
			return
		}
		st.mu.Lock()
		st.check(msg, entries)
		st.cond.Broadcast()
		st.mu.Unlock()
	}
}

// check accounts for one response. Caller holds mu.
func (st *pipelined) check(msg ldapwire.Message, entries int) {
	n, open := st.entries[msg.ID]
	switch {
	case !open:
		st.failure = "response for message ID that is not outstanding"
	case msg.OpTag == ldapwire.OpSearchResultEntry:
		st.entries[msg.ID] = n + 1
	case msg.OpTag != ldapwire.OpSearchResultDone:
		st.failure = "unexpected response type"
	case st.abandoned[msg.ID]:
		delete(st.entries, msg.ID) // answered before the abandon won: fine
		delete(st.abandoned, msg.ID)
	case n != entries:
		st.failure = "wrong number of entries before the result"
	default:
		delete(st.entries, msg.ID)
		st.answered++
	}
}

func (st *pipelined) fail(why string) {
	st.mu.Lock()
	if st.failure == "" {
		st.failure = why
	}
	st.cond.Broadcast()
	st.mu.Unlock()
}

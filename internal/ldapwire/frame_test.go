package ldapwire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// maxPayload keeps a test message's content within DefaultMaxMessageSize.
const maxPayload = DefaultMaxMessageSize - 16

// appendTestMessage appends SEQUENCE { INTEGER id, [APPLICATION tag%31] payload },
// the payload being payload bytes filled by fill.
func appendTestMessage(dst []byte, id int32, tag byte, payload int, fill func([]byte)) []byte {
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(payload))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, 0x40|tag%31, payload)
	start := len(dst)
	dst = slices.Grow(dst, payload)[:start+payload]
	fill(dst[start:])
	return dst
}

// testStream is messages sent back to back; ends[i] is where message i ends.
type testStream struct {
	data []byte
	ends []int
}

func (s *testStream) add(id int32, tag byte, payload int, fill func([]byte)) {
	s.data = appendTestMessage(s.data, id, tag, payload, fill)
	s.ends = append(s.ends, len(s.data))
}

// check frames s through fr and compares every frame with what was sent.
func (s *testStream) check(t *testing.T, fr *Reader, what string) {
	t.Helper()
	start, prev := 0, 0
	for i, end := range s.ends {
		got, err := fr.Next()
		if err != nil {
			t.Fatalf("%s: message %d of %d (%d bytes, after %d): %v", what, i, len(s.ends), end-start, prev, err)
		}
		if want := s.data[start:end]; !bytes.Equal(got, want) {
			t.Fatalf("%s: message %d of %d: got %d bytes, sent %d (after %d)", what, i, len(s.ends), len(got), len(want), prev)
		}
		if _, err := Parse(got); err != nil {
			t.Fatalf("%s: message %d: %v", what, i, err)
		}
		start, prev = end, end-start
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("%s: after %d messages: %v, want EOF", what, len(s.ends), err)
	}
}

// sizeReader hands out data in reads of at most the size next returns for
// the bytes read so far, the last read with io.EOF.
type sizeReader struct {
	data []byte
	off  int
	next func(off int) int
}

func (r *sizeReader) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), max(1, r.next(r.off)))], r.data[r.off:])
	r.off += n
	if r.off == len(r.data) {
		return n, io.EOF
	}
	return n, nil
}

// sizePlan draws message payload sizes, budget bytes in all: mostly small,
// some 64 KiB to 2 MiB, a few up to large, and big-small-big runs (one
// among the first messages).
type sizePlan struct {
	rng          *rand.Rand
	budget       int
	large        int
	sizes        []int
	transitioned bool
}

func (p *sizePlan) draw() []int {
	for p.budget > 0 {
		if r := p.rng.IntN(1000); r < 2 || !p.transitioned && r < 50 {
			p.transitioned = true
			p.push(p.big(), p.small(), p.big())
			continue
		}
		p.push(p.one())
	}
	return p.sizes
}

func (p *sizePlan) push(sizes ...int) {
	for _, n := range sizes {
		if p.budget <= 0 {
			return
		}
		n = min(n, p.budget, maxPayload)
		p.sizes = append(p.sizes, n)
		p.budget -= n + 16
	}
}

func (p *sizePlan) one() int {
	switch r := p.rng.IntN(1000); {
	case r < 985:
		return p.small()
	case r < 998:
		return 64<<10 + p.rng.IntN(2<<20-64<<10)
	}
	return p.big()
}

// small is log-uniform below 32 KiB: most a few bytes to a few KiB.
func (p *sizePlan) small() int { return p.rng.IntN(1 << p.rng.IntN(16)) }

// big is over the 1 MiB above which the frame buffer is dropped.
func (p *sizePlan) big() int { return 1<<20 + 1 + p.rng.IntN(p.large-(1<<20)) }

// TestReaderRandomSizeSequences frames random sequences of messages, from a
// few bytes to 16 MiB, delivered in random chunks of 1 byte to 1 MiB, with
// a large and a small read buffer: every frame must be what was sent.
func TestReaderRandomSizeSequences(t *testing.T) {
	budget, large := 64<<20, maxPayload
	if testing.Short() {
		budget, large = 8<<20, 3<<20
	}
	seeds := []uint64{1, 2, 3, uint64(time.Now().UnixNano())}
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 0x1da9))
		plan := &sizePlan{rng: rng, budget: budget, large: large}
		stream := randomStream(seed, plan.draw(), rng)
		t.Logf("seed %d: %d messages, %d bytes", seed, len(stream.ends), len(stream.data))
		for _, bufSize := range []int{16 << 10, 512} {
			chunks := rand.New(rand.NewPCG(seed, uint64(bufSize)))
			r := &sizeReader{data: stream.data, next: func(int) int { return 1 + chunks.IntN(1<<chunks.IntN(21)) }}
			stream.check(t, NewReaderSize(r, 0, bufSize), fmt.Sprintf("seed %d, buffer %d", seed, bufSize))
		}
	}
}

// randomStream builds messages of the given payload sizes with random ids,
// tags and payload bytes.
func randomStream(seed uint64, sizes []int, rng *rand.Rand) *testStream {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	bytesRNG := rand.NewChaCha8(key)
	total := 0
	for _, n := range sizes {
		total += n + 16
	}
	s := &testStream{data: make([]byte, 0, total)}
	for _, n := range sizes {
		id := int32(rng.Int64N(MaxMessageID + 1))
		s.add(id, byte(rng.IntN(31)), n, func(b []byte) { _, _ = bytesRNG.Read(b) })
	}
	return s
}

// TestReaderSmallAfterHuge is the case of a fixed bug: a 100-byte message
// read after a 3 MiB one came back empty, its buffer dropped once filled.
func TestReaderSmallAfterHuge(t *testing.T) {
	var s testStream
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(i*7 + 1)
		}
	}
	s.add(1, OpSearchResultEntry, 3<<20, fill)
	s.add(2, OpSearchResultDone, 100-7, fill)
	s.add(3, OpSearchResultEntry, 2<<20, fill)
	s.add(4, OpSearchResultDone, 50, fill)
	if got := s.ends[1] - s.ends[0]; got != 100 {
		t.Fatalf("second message is %d bytes", got)
	}
	// No read crosses a message boundary, so that each small message is
	// assembled rather than returned in place from the read buffer.
	r := &sizeReader{data: s.data, next: func(off int) int {
		i, _ := slices.BinarySearch(s.ends, off+1)
		return s.ends[i] - off
	}}
	s.check(t, NewReaderSize(r, 0, 16<<10), "3 MiB then 100 bytes")
}

// FuzzReaderSizes frames message sequences whose sizes, read chunks and
// read buffer the input chooses: every frame must be what was sent. The
// first byte picks the read buffer (16 B to 16 KiB), each next three a
// message of up to 2 MiB; read sizes (1 byte to 1 MiB) come from every byte
// in turn.
func FuzzReaderSizes(f *testing.F) {
	f.Add([]byte{10, 0x05, 0xc0, 0x00, 0x00, 0x00, 0x64, 0x05, 0x90, 0x00, 0x01, 0x00, 0x10})
	f.Add([]byte{5, 0x03, 0xff, 0xff, 0x00, 0x00, 0x64, 0x02, 0x10, 0x00})
	f.Add([]byte{0, 0, 0, 1, 1, 0, 2, 2, 0, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		bufSize := 16 << (data[0] % 11)
		var s testStream
		budget := 4 << 20
		for i := 1; i+2 < len(data) && budget > 0; i += 3 {
			n := min(int(binary.BigEndian.Uint16(data[i+1:]))<<(data[i]%6), budget)
			budget -= n + 16
			s.add(int32(i<<(data[i]%24)&MaxMessageID), data[i], n, func(b []byte) {
				for j := range b {
					b[j] = byte(j>>8) ^ byte(j) ^ byte(i)
				}
			})
		}
		k := 0
		r := &sizeReader{data: s.data, next: func(int) int {
			v := int(data[k%len(data)])
			k++
			return 1 + v*v*16
		}}
		s.check(t, NewReaderSize(r, 0, bufSize), fmt.Sprintf("buffer %d", bufSize))
	})
}

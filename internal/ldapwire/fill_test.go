package ldapwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

var errEmpty = errors.New("nothing yet")

// chunks hands out one chunk per Read, errEmpty between chunks, then EOF.
type chunks struct {
	parts [][]byte
	reads int
	gap   bool
}

func (c *chunks) Read(p []byte) (int, error) {
	c.reads++
	if c.gap {
		c.gap = false
		return 0, errEmpty
	}
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
		c.gap = true
	}
	return n, nil
}

func message(id byte, size int) []byte {
	body := bytes.Repeat([]byte{'x'}, size)
	op := append([]byte{0x04, byte(len(body))}, body...)
	return append([]byte{0x30, byte(3 + len(op)), 0x02, 1, id}, op...)
}

func TestFillReadsOnceAndFramesWhatCame(t *testing.T) {
	a, b, c := message(1, 10), message(2, 20), message(3, 30)
	stream := &chunks{parts: [][]byte{append(append([]byte{}, a...), b[:7]...), append(b[7:], c...)}}
	r := NewReaderSize(stream, 0, 256)

	if more, err := r.Fill(); err != nil || more {
		t.Fatalf("Fill() = %v, %v; want a short read", more, err)
	}
	if stream.reads != 1 {
		t.Fatalf("Fill made %d reads, want 1", stream.reads)
	}
	if !r.Ready() {
		t.Fatal("first message not ready")
	}
	if got, _ := r.Next(); !bytes.Equal(got, a) {
		t.Fatalf("got %x, want %x", got, a)
	}
	if r.Ready() {
		t.Fatal("half a message reported ready")
	}
	if partial, fits := r.Incomplete(); !partial || !fits {
		t.Fatalf("Incomplete() = %v, %v; want true, true", partial, fits)
	}
	if _, err := r.Fill(); !errors.Is(err, errEmpty) {
		t.Fatalf("Fill of an empty stream: %v", err)
	}
	if _, err := r.Fill(); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]byte{b, c} {
		if !r.Ready() {
			t.Fatalf("message %x not ready", want[4])
		}
		if got, _ := r.Next(); !bytes.Equal(got, want) {
			t.Fatalf("got %x, want %x", got, want)
		}
	}
	if partial, _ := r.Incomplete(); partial {
		t.Fatal("nothing is left, yet Incomplete says partial")
	}
	r.Fill() // errEmpty
	if _, err := r.Fill(); err != io.EOF {
		t.Fatalf("Fill at the end: %v, want EOF", err)
	}
}

func TestIncompleteTellsWhatCannotFit(t *testing.T) {
	big := message(1, 120) // 127 bytes, above a 64-byte buffer
	r := NewReaderSize(&chunks{parts: [][]byte{big}}, 0, 64)
	if more, err := r.Fill(); err != nil || !more {
		t.Fatalf("Fill() = %v, %v; want a read that filled the buffer", more, err)
	}
	if partial, fits := r.Incomplete(); !partial || fits {
		t.Fatalf("Incomplete() = %v, %v; want true, false", partial, fits)
	}
	if more, err := r.Fill(); err != nil || !more { // a full buffer is not read
		t.Fatalf("Fill() of a full buffer = %v, %v", more, err)
	}
	got, err := r.Next() // the blocking path reads it whole
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Next: %v, %x", err, got)
	}

	bad := NewReaderSize(&chunks{parts: [][]byte{{0x31, 0x05, 1}}}, 0, 64)
	bad.Fill()
	if partial, fits := bad.Incomplete(); !partial || fits {
		t.Fatalf("bad tag: Incomplete() = %v, %v; want true, false", partial, fits)
	}
	hdr := NewReaderSize(&chunks{parts: [][]byte{{0x30, 0x82, 0x01}}}, 0, 64)
	hdr.Fill()
	if partial, fits := hdr.Incomplete(); !partial || !fits {
		t.Fatalf("length octets to come: Incomplete() = %v, %v; want true, true", partial, fits)
	}
}

func TestReleaseGivesTheBufferBackOnlyWhenEmpty(t *testing.T) {
	a, b := message(1, 10), message(2, 20)
	stream := &chunks{parts: [][]byte{append(append([]byte{}, a...), b[:5]...), b[5:]}}
	r := NewReaderSize(stream, 0, 256)
	if !r.Release() { // nothing read yet
		t.Fatal("an empty reader kept its buffer")
	}
	if r.Buffered() != 0 || r.Ready() {
		t.Fatal("a released reader reports buffered bytes")
	}
	if _, err := r.Fill(); err != nil { // takes a buffer again
		t.Fatal(err)
	}
	if got, _ := r.Next(); !bytes.Equal(got, a) {
		t.Fatalf("got %x, want %x", got, a)
	}
	if r.Release() {
		t.Fatal("released the buffer with half a message in it")
	}
	r.Fill() // errEmpty
	r.Fill()
	if got, _ := r.Next(); !bytes.Equal(got, b) {
		t.Fatalf("after a kept buffer: got %x, want %x", got, b)
	}
	if !r.Release() {
		t.Fatal("kept the buffer once every message was taken")
	}
	if partial, _ := r.Incomplete(); partial {
		t.Fatal("a released reader says a message has begun")
	}
	if allocs := testing.AllocsPerRun(100, func() {
		r.Fill()
		r.Release()
	}); allocs != 0 {
		t.Fatalf("taking and giving back a buffer allocates %.1f times", allocs)
	}
}

package slapdrun

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// runTool runs an OpenLDAP command line tool and returns its combined
// output.
func runTool(path string, args ...string) (string, error) {
	out, err := exec.Command(path, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// readTail returns the last n lines of file, starting at offset.
func readTail(file string, offset int64, n int) string {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// containsAddrInUse reports whether a slapd log says its port was taken
// ("daemon: bind(6) failed errno=98 (Address already in use)").
func containsAddrInUse(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "errno=98")
}

// dialer returns a TCP dialer with the given connect timeout.
func dialer(timeout time.Duration) *net.Dialer { return &net.Dialer{Timeout: timeout} }

// FreePorts returns n distinct free TCP ports on 127.0.0.1. All listeners
// are held open until every port is picked so the ports are distinct; the
// ports can still be taken by someone else before a server binds them,
// which its starter must handle (Start retries).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("slapdrun: pick a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// copySparse copies the regular file src to dst, copying only the data
// regions (see dataRegions) and skipping all-zero blocks within them, so
// that mdb's sparse data file (as large as maxsize) stays sparse and is
// copied quickly.
func copySparse(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	regions, err := dataRegions(in, info.Size())
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, reg := range regions {
		if err := copyRegion(out, in, reg[0], reg[1], buf); err != nil {
			return err
		}
	}
	return out.Truncate(info.Size())
}

// copyRegion copies bytes [start, end) of in to the same offsets of out.
func copyRegion(out, in *os.File, start, end int64, buf []byte) error {
	for off := start; off < end; {
		n, err := in.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if n > 0 {
			if err := writeOrSkip(out, buf[:n], off); err != nil {
				return err
			}
			off += int64(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeOrSkip writes block at offset off unless it is all zeros.
func writeOrSkip(out *os.File, block []byte, off int64) error {
	for i := 0; i < len(block); i += 4096 {
		chunk := block[i:min(i+4096, len(block))]
		if !isZero(chunk) {
			if _, err := out.WriteAt(chunk, off+int64(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// isZero reports whether b contains only zero bytes.
func isZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// pythonWithLDAP returns a Python interpreter that has python-ldap
// (Debian's python3-ldap, installed by `make test`).
func pythonWithLDAP(t *testing.T) string {
	t.Helper()
	return pythonWith(t, "ldap", "python-ldap (Debian package python3-ldap)")
}

// pythonWith returns a Python interpreter that can import module, Debian's
// own first.
func pythonWith(t *testing.T, module, what string) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import "+module).Run() == nil {
			return p
		}
	}
	t.Fatalf("no python3 with %s: run `make test`, which installs it", what)
	return ""
}

// pyClient runs testdata/pyldap_client.py against uri and returns its
// transcript: one [step, answer] pair per request.
func pyClient(python, uri string, args ...string) ([][2]any, error) {
	return scriptTranscript("python-ldap client", python, "testdata/pyldap_client.py", uri, args...)
}

// scriptTranscript runs a client script with interpreter against uri and
// decodes the JSON transcript it prints: one [step, answer] pair per request.
func scriptTranscript(what, interpreter, script, uri string, args ...string) ([][2]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, append([]string{script, uri}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1") // no __pycache__ beside the scripts
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %v against %s: %v\n%s", what, args, uri, err, stderr.Bytes())
	}
	var steps [][2]any
	if err := json.Unmarshal(out, &steps); err != nil {
		return nil, fmt.Errorf("%s %v: transcript: %v\n%s", what, args, err, out)
	}
	return steps, nil
}

// sameTranscript fails at the first step whose answer through ldapmux
// differs from the direct one, but for the steps named in except.
func sameTranscript(t *testing.T, who string, direct, proxied [][2]any, except ...string) {
	t.Helper()
	for i := range max(len(direct), len(proxied)) {
		if i >= len(direct) || i >= len(proxied) {
			t.Fatalf("%s: %d steps directly, %d through ldapmux", who, len(direct), len(proxied))
		}
		if name, _ := direct[i][0].(string); slices.Contains(except, name) {
			continue
		}
		if !reflect.DeepEqual(direct[i], proxied[i]) {
			d, _ := json.Marshal(direct[i])
			p, _ := json.Marshal(proxied[i])
			t.Fatalf("%s: step %d differs\ndirect:  %s\nldapmux: %s", who, i, d, p)
		}
	}
}

// TestPythonLDAPClients runs python-ldap clients, written as applications
// write them (synchronous calls, requests sent behind a bind without
// waiting, paging, sorting, post-read control, password modify), directly
// against the replica that failover uses and through ldapmux, and compares
// every answer; then many readers through ldapmux at once, each bound as
// its own user, each compared with what that user reads directly.
func TestPythonLDAPClients(t *testing.T) {
	python := pythonWithLDAP(t)
	sameWriterAndReaders(t, func(uri string, args ...string) ([][2]any, error) { return pyClient(python, uri, args...) })
}

// sameWriterAndReaders runs a client script's writer scenario against the
// replica that failover uses and through ldapmux, then 12 readers at once
// each way, each bound as its own user, and compares every transcript.
func sameWriterAndReaders(t *testing.T, client func(uri string, args ...string) ([][2]any, error)) {
	t.Helper()
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 40})
	_, addr := startProxy(t, cluster, "")
	direct, proxied := "ldap://"+cluster.Replica(1).Addr, "ldap://"+addr

	writer := []string{"writer", slapdtest.WriterDN, slapdtest.WriterPassword, slapdtest.ScratchDN,
		slapdtest.UserDN(40), slapdtest.UserPassword(40)}
	want, err := client(direct, writer...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client(proxied, writer...)
	if err != nil {
		t.Fatal(err)
	}
	sameTranscript(t, "writer", want, got)

	const readers = 12
	reader := func(n int) []string {
		return []string{"reader", slapdtest.UserDN(n), slapdtest.UserPassword(n), slapdtest.PeopleDN}
	}
	wants := runReaders(t, client, direct, readers, reader)
	gots := runReaders(t, client, proxied, readers, reader)
	for n := 1; n <= readers; n++ {
		sameTranscript(t, fmt.Sprintf("reader %d", n), wants[n], gots[n])
	}
}

// runReaders runs n reader clients against uri at the same time and
// returns their transcripts by user number.
func runReaders(t *testing.T, client func(uri string, args ...string) ([][2]any, error), uri string, n int, args func(int) []string) map[int][][2]any {
	t.Helper()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		out   = make(map[int][][2]any)
		first error
	)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			steps, err := client(uri, args(i)...)
			mu.Lock()
			defer mu.Unlock()
			out[i] = steps
			if err != nil && first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
	return out
}

// TestPythonSyncreplConsumers runs python-ldap's syncrepl consumer (RFC 4533
// refreshAndPersist, as caches and directory tools use it), four at once as
// different users, each on entries of its own: the refresh, then an add, a
// modify and a delete made while the search stays open. Every consumer must
// be sent, in order, what the same consumer is sent straight from slapd,
// and its connection must go on serving once it abandons the search.
func TestPythonSyncreplConsumers(t *testing.T) {
	python := pythonWithLDAP(t)
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 8})
	_, addr := startProxy(t, cluster, "")
	client := func(uri string, args ...string) ([][2]any, error) { return pyClient(python, uri, args...) }
	consumer := func(prefix string) func(int) []string {
		return func(n int) []string {
			return []string{"sync", slapdtest.UserDN(n), slapdtest.UserPassword(n), slapdtest.ScratchDN,
				slapdtest.WriterDN, slapdtest.WriterPassword, fmt.Sprintf("%s%d", prefix, n)}
		}
	}
	const consumers = 4
	wants := runReaders(t, client, "ldap://"+cluster.Replica(1).Addr, consumers, consumer("direct"))
	gots := runReaders(t, client, "ldap://"+addr, consumers, consumer("proxied"))
	for n := 1; n <= consumers; n++ {
		sameTranscript(t, fmt.Sprintf("consumer %d", n), wants[n], gots[n])
		if !strings.Contains(fmt.Sprint(gots[n]), "description:[after]") {
			t.Errorf("consumer %d was not sent the change made while its search was open: %v", n, gots[n])
		}
	}
}

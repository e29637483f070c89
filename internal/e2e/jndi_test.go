package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// javaForJNDI returns the java launcher, which runs testdata/JndiClient.java
// from its source (a JDK: Debian's default-jdk-headless, installed by `make
// test`).
func javaForJNDI(t *testing.T) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err == nil {
		if _, err = exec.LookPath("javac"); err == nil {
			return java
		}
	}
	t.Fatalf("no JDK (Debian package default-jdk-headless): run `make test`, which installs it")
	return ""
}

// jndiClient runs testdata/JndiClient.java against uri and decodes its
// transcript into out.
func jndiClient(java, uri string, out any, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, append([]string{"-Xshare:auto", "testdata/JndiClient.java", uri}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("JNDI client %v against %s: %v\n%s", args[0], uri, err, stderr.Bytes())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("JNDI client %v: transcript: %v\n%s", args[0], err, raw)
	}
	return nil
}

// TestJNDIClients runs Java's JNDI, as Java applications use it (pooled
// connections, referrals ignored so that every request carries the
// ManageDsaIT control, paged and sorted searches, compares written as base
// searches, a "Who am I?"), directly against the replica that failover
// uses and through ldapmux, and compares every answer: a writer, then
// twelve readers at once in one process, each bound as its own user.
func TestJNDIClients(t *testing.T) {
	java := javaForJNDI(t)
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 40})
	_, addr := startProxy(t, cluster, "")
	direct, proxied := "ldap://"+cluster.Replica(1).Addr, "ldap://"+addr

	writer := []string{"writer", slapdtest.WriterDN, slapdtest.WriterPassword, slapdtest.ScratchDN, slapdtest.UserDN(40)}
	var want, got [][2]any
	if err := jndiClient(java, direct, &want, writer...); err != nil {
		t.Fatal(err)
	}
	if err := jndiClient(java, proxied, &got, writer...); err != nil {
		t.Fatal(err)
	}
	sameTranscript(t, "writer", want, got)

	readers := []string{"readers", slapdtest.PeopleDN, slapdtest.RestrictedDN}
	for n := 1; n <= 12; n++ {
		readers = append(readers, slapdtest.UserDN(n), slapdtest.UserPassword(n))
	}
	var wants, gots map[string][][2]any
	if err := jndiClient(java, direct, &wants, readers...); err != nil {
		t.Fatal(err)
	}
	if err := jndiClient(java, proxied, &gots, readers...); err != nil {
		t.Fatal(err)
	}
	if len(wants) != 12 || len(gots) != 12 {
		t.Fatalf("%d readers directly, %d through ldapmux", len(wants), len(gots))
	}
	for n := 1; n <= 12; n++ {
		dn := slapdtest.UserDN(n)
		sameTranscript(t, "reader "+dn, wants[dn], gots[dn])
	}
}

package e2e

import "testing"

// pythonWithLDAP3 returns a Python interpreter that has ldap3 (Debian's
// python3-ldap3, installed by `make test`).
func pythonWithLDAP3(t *testing.T) string {
	t.Helper()
	return pythonWith(t, "ldap3", "ldap3 (Debian package python3-ldap3)")
}

// ldap3Client runs testdata/ldap3_client.py against uri and returns its
// transcript.
func ldap3Client(python, uri string, args ...string) ([][2]any, error) {
	return scriptTranscript("ldap3 client", python, "testdata/ldap3_client.py", uri, args...)
}

// TestLDAP3Clients runs ldap3, the pure-Python client with its own BER
// encoder (synchronous calls, ten searches in flight on an asynchronous
// connection, paging through its generator, filters of every kind, password
// changes), directly against the replica that failover uses and through
// ldapmux, and compares every answer: a writer, then twelve readers at
// once, each bound as its own user.
func TestLDAP3Clients(t *testing.T) {
	python := pythonWithLDAP3(t)
	sameWriterAndReaders(t, func(uri string, args ...string) ([][2]any, error) { return ldap3Client(python, uri, args...) })
}

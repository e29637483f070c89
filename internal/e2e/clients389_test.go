package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ldapmux/ldapmux/internal/dirtest"
)

// behindABind are the python-ldap reader's steps sent right behind its
// bind, before the bind's result: 389 runs them at once with the
// connection's previous identity (anonymous); ldapmux holds them until the
// bind's result and runs them as the bound user, as OpenLDAP does.
var behindABind = []string{"pipelined searches behind a bind", "pipelined whoami"}

// behindBindAsBound checks that the requests sent behind the bind ran as
// the bound user: the searches show mail, which only users may read, and
// "Who am I?" names the user.
func behindBindAsBound(t *testing.T, who, user string, steps [][2]any) {
	t.Helper()
	for _, step := range steps {
		got := fmt.Sprint(step[1])
		switch {
		case step[0] == behindABind[0] && !strings.Contains(got, "mail:[user."),
			step[0] == behindABind[1] && !strings.Contains(got, user):
			t.Errorf("%s: %s did not run as the bound user: %v", who, step[0], got)
		}
	}
}

// TestClientsOn389 runs the python-ldap and Net::LDAP readers (searches,
// paging, sorting, compares, size limits, requests behind a bind, abandon;
// many requests in flight on one connection, a virtual list view,
// assertions) and the JNDI readers against 389 Directory Server, directly
// and through ldapmux in proxied-authorization mode, several users at once,
// and compares every answer but that of requests sent behind a bind
// (behindABind).
func TestClientsOn389(t *testing.T) {
	cluster, _, addr := start389Proxied(t, 1, false)
	var users [][2]string
	for n := 1; n <= 6; n++ {
		users = append(users, [2]string{dirtest.UserDN(n), dirtest.UserPassword(n)})
	}
	compareReaders(t, readerRun{direct: cluster.Instances[0].URL, proxied: "ldap://" + addr,
		people: dirtest.PeopleDN, restricted: dirtest.ServicesDN, users: users,
		except: behindABind, check: behindBindAsBound})
}

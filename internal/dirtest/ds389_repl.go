//go:build linux

package dirtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// replicateTimeout bounds WaitReplicated and the initialisation when ctx
// has no earlier deadline.
const replicateTimeout = time.Minute

// agreementName is the cn of the agreement from instance from to to.
func agreementName(from, to int) string { return fmt.Sprintf("agmt-%d-%d", from, to) }

// setupReplication creates the agreements in both directions and
// initialises instance 2 from instance 1.
func (c *DS389Cluster) setupReplication(ctx context.Context) error {
	for _, d := range c.Instances {
		if err := d.configureReplica(ctx); err != nil {
			return err
		}
	}
	errs := make([]error, len(c.Instances))
	var wg sync.WaitGroup
	for i, from := range c.Instances {
		to := c.Instances[1-i]
		wg.Go(func() {
			_, errs[i] = from.dsconf(ctx, "repl-agmt", "create", "--suffix", BaseDN,
				"--host", "127.0.0.1", "--port", strconv.Itoa(to.Port), "--conn-protocol", "LDAP",
				"--bind-dn", ReplicationManagerDN, "--bind-passwd", replicationManagerPassword,
				"--bind-method", "SIMPLE", agreementName(from.ID, to.ID))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	first := c.Instances[0]
	if _, err := first.dsconf(ctx, "repl-agmt", "init", "--suffix", BaseDN, agreementName(1, 2)); err != nil {
		return err
	}
	return first.waitInitialised(ctx, agreementName(1, 2))
}

// configureReplica adds ruvACI to the mapping tree entry (cn=config is
// not replicated) and shortens the replica's backoff (3 s to 5 min by
// default) after a failed session, so that a restarted peer catches up
// within a second or two.
func (d *DS389) configureReplica(ctx context.Context) error {
	return withBind(ctx, d.URL, d.ManagerDN, d.ManagerPassword, func(conn *ldap.Conn) error {
		aci := ldap.NewModifyRequest(MappingTreeDN, nil)
		aci.Add("aci", []string{ruvACI})
		backoff := ldap.NewModifyRequest(ReplicaDN, nil)
		backoff.Replace("nsds5ReplicaBackoffMin", []string{"1"})
		backoff.Replace("nsds5ReplicaBackoffMax", []string{"2"})
		for _, mod := range []*ldap.ModifyRequest{aci, backoff} {
			if err := conn.Modify(mod); err != nil {
				return fmt.Errorf("dirtest: modify %s on %s: %w", mod.DN, d.proc.name, err)
			}
		}
		return nil
	})
}

// waitInitialised waits until the total update of agreement name has
// succeeded.
func (d *DS389) waitInitialised(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, replicateTimeout)
	defer cancel()
	return waitFor(ctx, "initialise replica over "+name, nil, func() error {
		e, err := d.agreement(ctx, name, "nsds5ReplicaLastInitStatus", "nsds5BeginReplicaRefresh")
		if err != nil {
			return err
		}
		status := e.GetAttributeValue("nsds5ReplicaLastInitStatus")
		switch {
		case e.GetAttributeValue("nsds5BeginReplicaRefresh") == "" && strings.Contains(status, "Total update succeeded"):
			return nil
		case strings.Contains(status, "replica busy") || strings.Contains(status, "Replication error") ||
			strings.Contains(status, "LDAP error"):
			return fmt.Errorf("%w: %s", errGiveUp, status)
		}
		return fmt.Errorf("status %q", status)
	})
}

// agreement reads attrs of the replication agreement name as Directory
// Manager.
func (d *DS389) agreement(ctx context.Context, name string, attrs ...string) (*ldap.Entry, error) {
	var entry *ldap.Entry
	err := withBind(ctx, d.URL, d.ManagerDN, d.ManagerPassword, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest("cn=mapping tree,cn=config", ldap.ScopeWholeSubtree,
			ldap.NeverDerefAliases, 0, 0, false,
			"(&(objectClass=nsds5replicationAgreement)(cn="+ldap.EscapeFilter(name)+"))", attrs, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) != 1 {
			return fmt.Errorf("dirtest: %d agreements named %s on %s", len(res.Entries), name, d.proc.name)
		}
		entry = res.Entries[0]
		return nil
	})
	return entry, err
}

// PauseReplication disables the agreement from instance from to instance
// to (nsds5ReplicaEnabled: off, as `dsconf repl-agmt disable` does):
// changes on from stay there until ResumeReplication.
func (c *DS389Cluster) PauseReplication(from, to int) error {
	return c.setAgreementEnabled(from, to, "off")
}

// ResumeReplication enables the agreement from instance from to instance
// to again; the changes made meanwhile are sent.
func (c *DS389Cluster) ResumeReplication(from, to int) error {
	return c.setAgreementEnabled(from, to, "on")
}

// setAgreementEnabled sets nsds5ReplicaEnabled of an agreement.
func (c *DS389Cluster) setAgreementEnabled(from, to int, value string) error {
	if from < 1 || from > len(c.Instances) || to < 1 || to > len(c.Instances) || from == to {
		return fmt.Errorf("dirtest: no agreement from instance %d to %d", from, to)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*dialTimeout)
	defer cancel()
	d := c.Instance(from)
	e, err := d.agreement(ctx, agreementName(from, to), "cn")
	if err != nil {
		return err
	}
	return withBind(ctx, d.URL, d.ManagerDN, d.ManagerPassword, func(conn *ldap.Conn) error {
		mod := ldap.NewModifyRequest(e.DN, nil)
		mod.Replace("nsds5ReplicaEnabled", []string{value})
		return conn.Modify(mod)
	})
}

// RUV returns the maximum CSN per replica ID from the instance's replica
// update vector (ReplicaDN), read as Directory Manager. A replica that
// has not written yet has an empty CSN.
func (d *DS389) RUV(ctx context.Context) (map[int]string, error) {
	ruv := map[int]string{}
	err := withBind(ctx, d.URL, d.ManagerDN, d.ManagerPassword, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest(ReplicaDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", []string{"nsds50ruv"}, nil))
		if err != nil {
			return fmt.Errorf("dirtest: read RUV of %s: %w", d.proc.name, err)
		}
		if len(res.Entries) != 1 {
			return fmt.Errorf("dirtest: read RUV of %s: %d entries", d.proc.name, len(res.Entries))
		}
		for _, v := range res.Entries[0].GetAttributeValues("nsds50ruv") {
			if id, csn, ok := parseRUVElement(v); ok {
				ruv[id] = csn
			}
		}
		return nil
	})
	return ruv, err
}

// parseRUVElement parses "{replica ID URL} MINCSN MAXCSN" into the ID and
// the maximum CSN ("" before the replica's first change); it reports
// false for other values ({replicageneration}).
func parseRUVElement(v string) (int, string, bool) {
	head, rest, ok := strings.Cut(v, "}")
	fields := strings.Fields(strings.TrimPrefix(head, "{"))
	if !ok || len(fields) < 2 || fields[0] != "replica" {
		return 0, "", false
	}
	id, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, "", false
	}
	csns := strings.Fields(rest)
	if len(csns) == 0 {
		return id, "", true
	}
	return id, csns[len(csns)-1], true
}

// WaitReplicated waits until every running instance has the same RUV,
// that is until all have applied the same changes (paused agreements
// prevent that). Without an earlier ctx deadline it gives up after one
// minute.
func (c *DS389Cluster) WaitReplicated(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, replicateTimeout)
	defer cancel()
	var last []map[int]string
	return waitFor(ctx, "replicas did not converge", nil, func() error {
		last = last[:0]
		for _, d := range c.Instances {
			if !d.Running() {
				continue
			}
			ruv, err := d.RUV(ctx)
			if err != nil {
				return err
			}
			last = append(last, ruv)
		}
		for _, ruv := range last[1:] {
			if !maps.Equal(last[0], ruv) {
				return fmt.Errorf("RUVs differ: %v", last)
			}
		}
		return nil
	})
}

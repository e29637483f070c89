package slapdrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// startAttempts bounds how often Start re-picks ports that were taken.
const startAttempts = 5

// replicateTimeout bounds WaitReplicated when ctx has no deadline.
const replicateTimeout = time.Minute

// Cluster is a set of slapd replicas replicating dc=example,dc=com to each
// other (multi-provider syncrepl, refreshAndPersist).
type Cluster struct {
	Dir      string     // parent directory of the replica-N directories
	Replicas []*Replica // Replicas[i].ID == i+1

	opts      Options
	relays    []*Relay // on the replication links (relay.go)
	ownsDir   bool
	closeOnce sync.Once
	closeErr  error
}

// Start creates, loads and starts the cluster. It returns once every
// replica answers LDAP requests and has the initial data. On error nothing
// is left running (and a directory it created is removed); the error
// includes slaptest output or the tail of the failing slapd's log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, p := range []string{SlapdPath, SlapaddPath, SlaptestPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("slapdrun: OpenLDAP not installed: %w", err)
		}
	}
	began := time.Now()
	c := &Cluster{opts: opts}
	if err := c.setup(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	opts.Logf("slapdrun: %d replicas up in %v: %s", len(c.Replicas), time.Since(began).Round(time.Millisecond), strings.Join(c.URLs(), " "))
	return c, nil
}

// setup does the work of Start; the caller closes c on error.
func (c *Cluster) setup(ctx context.Context) error {
	if err := c.makeDirs(); err != nil {
		return err
	}
	if err := c.assignPorts(); err != nil {
		return err
	}
	if err := c.startRelays(); err != nil {
		return err
	}
	if err := c.writeConfigs(); err != nil {
		return err
	}
	if err := c.loadData(); err != nil {
		return err
	}
	if err := c.startAll(ctx); err != nil {
		return err
	}
	return c.checkData(ctx)
}

// makeDirs creates Dir (a temp dir unless given) and fresh replica dirs.
func (c *Cluster) makeDirs() error {
	if c.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "ldapmux-slapd-")
		if err != nil {
			return fmt.Errorf("slapdrun: %w", err)
		}
		c.Dir, c.ownsDir = dir, true
	} else {
		abs, err := filepath.Abs(c.opts.Dir)
		if err != nil {
			return fmt.Errorf("slapdrun: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("slapdrun: %w", err)
		}
		c.Dir = abs
	}
	for id := 1; id <= c.opts.Replicas; id++ {
		r := newReplica(id, filepath.Join(c.Dir, "replica-"+strconv.Itoa(id)), 0, c.opts.Logf)
		if err := os.RemoveAll(r.Dir); err != nil {
			return fmt.Errorf("slapdrun: %w", err)
		}
		if err := os.MkdirAll(r.dbDir(), 0o755); err != nil {
			return fmt.Errorf("slapdrun: %w", err)
		}
		c.Replicas = append(c.Replicas, r)
	}
	return nil
}

// assignPorts sets the fixed ports or picks free ones.
func (c *Cluster) assignPorts() error {
	ports := c.opts.Ports
	if len(ports) == 0 {
		var err error
		if ports, err = pickPorts(len(c.Replicas)); err != nil {
			return err
		}
	}
	for i, r := range c.Replicas {
		r.setPort(ports[i])
	}
	return c.assignTLS()
}

// pickPorts is FreePorts; tests replace it to provoke port conflicts.
var pickPorts = FreePorts

// writeConfigs writes and validates every replica's slapd.conf (they all
// depend on every port).
func (c *Cluster) writeConfigs() error {
	for _, r := range c.Replicas {
		if err := writeConfig(r, c.Replicas, c.opts); err != nil {
			return err
		}
	}
	return nil
}

// loadData slapadds the initial LDIF into replica 1 and copies the
// database to the other replicas, so all start with identical entries,
// entryUUIDs, entryCSNs and contextCSN.
func (c *Cluster) loadData() error {
	if c.opts.Provider != "" {
		return nil // consumers start empty and take everything from the provider
	}
	ldifFile := filepath.Join(c.Dir, "data.ldif")
	if err := os.WriteFile(ldifFile, []byte(initialLDIF(c.opts.Users, c.extraLDIF())), 0o600); err != nil {
		return fmt.Errorf("slapdrun: %w", err)
	}
	first := c.Replicas[0]
	// -q skips consistency checks (faster; schema is still checked), -w
	// writes contextCSN, -S 1 stamps the CSNs with serverID 1.
	out, err := runTool(SlapaddPath, "-f", first.ConfigFile, "-b", BaseDN, "-l", ldifFile, "-q", "-w", "-S", "1")
	if err != nil {
		return fmt.Errorf("slapdrun: slapadd %s: %v\n%s", ldifFile, err, out)
	}
	for _, r := range c.Replicas[1:] {
		src := filepath.Join(first.dbDir(), "data.mdb")
		if err := copySparse(filepath.Join(r.dbDir(), "data.mdb"), src); err != nil {
			return fmt.Errorf("slapdrun: copy database to replica %d: %w", r.ID, err)
		}
	}
	return nil
}

// startAll launches every replica and waits until all answer. If a picked
// port turned out to be taken, it kills everything, picks new ports,
// rewrites the configurations and tries again.
func (c *Cluster) startAll(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := c.launchAndWait(ctx)
		if err == nil {
			return nil
		}
		if kerr := c.killAll(); kerr != nil {
			return errors.Join(err, kerr)
		}
		if !errors.Is(err, errAddrInUse) || len(c.opts.Ports) != 0 || attempt == startAttempts {
			return err
		}
		c.opts.Logf("slapdrun: port conflict (attempt %d), picking new ports: %v", attempt, firstLine(err))
		if err := c.assignPorts(); err != nil {
			return err
		}
		if err := c.writeConfigs(); err != nil {
			return err
		}
	}
}

// launchAndWait starts all replicas, then waits for all of them in
// parallel.
func (c *Cluster) launchAndWait(ctx context.Context) error {
	for _, r := range c.Replicas {
		if err := r.launch(); err != nil {
			return err
		}
	}
	errs := make([]error, len(c.Replicas))
	var wg sync.WaitGroup
	for i, r := range c.Replicas {
		wg.Go(func() { errs[i] = r.waitReady(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// consumerLoadTimeout bounds how long consumers of Options.Provider may
// take to replicate the initial data.
const consumerLoadTimeout = 60 * time.Second

// checkData verifies that every replica serves the initial data.
func (c *Cluster) checkData(ctx context.Context) error {
	dn := StaffGroupDN
	if c.opts.Users > 0 {
		dn = UserDN(c.opts.Users)
	}
	if c.opts.Provider != "" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, consumerLoadTimeout)
		defer cancel()
	}
	for _, r := range c.Replicas {
		err := r.adminBaseSearch(ctx, dn, "uid")
		for c.opts.Provider != "" && err != nil && ctx.Err() == nil { // still replicating
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			err = r.adminBaseSearch(ctx, dn, "uid")
		}
		if err != nil {
			return fmt.Errorf("slapdrun: replica %d lacks initial data %s: %w", r.ID, dn, err)
		}
	}
	return nil
}

// URLs returns the ldap:// URLs of all replicas.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Replicas))
	for i, r := range c.Replicas {
		urls[i] = r.URL
	}
	return urls
}

// Replica returns the replica with the given 1-based id.
func (c *Cluster) Replica(id int) *Replica { return c.Replicas[id-1] }

// killAll kills every running replica.
func (c *Cluster) killAll() error {
	var errs []error
	for _, r := range c.Replicas {
		errs = append(errs, r.Kill())
	}
	return errors.Join(errs...)
}

// Close kills all slapd processes and removes Dir if Start created it. It
// is safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = errors.Join(c.killAll(), c.closeRelays())
		if c.ownsDir && c.Dir != "" {
			c.closeErr = errors.Join(c.closeErr, os.RemoveAll(c.Dir))
		}
	})
	return c.closeErr
}

// WaitReplicated waits until every running, not paused replica reports
// the same (sorted) contextCSN set on BaseDN, i.e. all have applied the
// same changes. Without a ctx deadline it gives up after one minute.
func (c *Cluster) WaitReplicated(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, replicateTimeout)
		defer cancel()
	}
	for {
		state, err := c.csnState(ctx)
		if err == nil && converged(state) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("slapdrun: replicas did not converge: %w (last state: %s)", ctx.Err(), describeState(state, err))
		case <-time.After(pollInterval):
		}
	}
}

// csnState returns the contextCSN sets of all running, unpaused replicas,
// keyed by replica id.
func (c *Cluster) csnState(ctx context.Context) (map[int][]string, error) {
	state := map[int][]string{}
	for _, r := range c.Replicas {
		if !r.Running() || r.Paused() {
			continue
		}
		csns, err := r.ContextCSN(ctx)
		if err != nil {
			return state, err
		}
		state[r.ID] = csns
	}
	return state, nil
}

// converged reports whether all sets in state are equal.
func converged(state map[int][]string) bool {
	var first []string
	seen := false
	for _, csns := range state {
		if !seen {
			first, seen = csns, true
			continue
		}
		if !slices.Equal(first, csns) {
			return false
		}
	}
	return true
}

// describeState formats the last observed replication state.
func describeState(state map[int][]string, err error) string {
	var b strings.Builder
	for id := 1; id <= MaxReplicas; id++ {
		if csns, ok := state[id]; ok {
			fmt.Fprintf(&b, "replica %d: %v; ", id, csns)
		}
	}
	if err != nil {
		fmt.Fprintf(&b, "error: %v", err)
	}
	return b.String()
}

// firstLine returns the first line of err's message.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// extraLDIF is Options.ExtraLDIF, after the password policy entry when
// Options.PasswordPolicy is set.
func (c *Cluster) extraLDIF() string {
	if !c.opts.PasswordPolicy {
		return c.opts.ExtraLDIF
	}
	return "dn: " + PolicyDN + "\nobjectClass: device\nobjectClass: pwdPolicy\ncn: pwdpolicy\n" +
		"pwdAttribute: userPassword\npwdMustChange: TRUE\npwdAllowUserChange: TRUE\n\n" + c.opts.ExtraLDIF
}

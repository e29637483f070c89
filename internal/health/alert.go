package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// AlertConfig configures an admin-alert check.
type AlertConfig struct {
	MonitorDN            string // entry read at every run; default cn=monitor
	AlertsBaseDN         string // persistent search base; default cn=alerts
	DegradedAttribute    string // default degraded-alert-type
	UnavailableAttribute string // default unavailable-alert-type
	PollOnly             bool   // never use a persistent search
}

// PingDirectory's defaults.
const (
	DefaultMonitorDN            = "cn=monitor"
	DefaultAlertsBaseDN         = "cn=alerts"
	DefaultDegradedAttribute    = "degraded-alert-type"
	DefaultUnavailableAttribute = "unavailable-alert-type"
)

// OIDPersistentSearch is the persistent search control
// (draft-ietf-ldapext-psearch).
const OIDPersistentSearch = "2.16.840.1.113730.3.4.3"

// AdminAlert follows what a server says of itself: a value of the
// unavailable (degraded) alert attribute of its monitor entry makes it
// unavailable (degraded). The entry is read at every run. Where the server
// supports persistent search, a watcher keeps one on the alerts base and
// asks for a run as soon as an alert arrives; otherwise the entry is only
// polled at the check frequency.
type AdminAlert struct {
	name     string
	cfg      AlertConfig
	watching atomic.Bool  // the persistent search is established
	alerts   atomic.Int64 // alerts received through it
}

// NewAdminAlert builds the admin-alert check of one server.
func NewAdminAlert(name string, cfg AlertConfig) *AdminAlert {
	setDefault(&cfg.MonitorDN, DefaultMonitorDN)
	setDefault(&cfg.AlertsBaseDN, DefaultAlertsBaseDN)
	setDefault(&cfg.DegradedAttribute, DefaultDegradedAttribute)
	setDefault(&cfg.UnavailableAttribute, DefaultUnavailableAttribute)
	return &AdminAlert{name: name, cfg: cfg}
}

// Name implements Check.
func (a *AdminAlert) Name() string { return a.name }

// Watching reports whether the persistent search is established.
func (a *AdminAlert) Watching() bool { return a.watching.Load() }

// Alerts is the number of alerts the persistent search delivered.
func (a *AdminAlert) Alerts() int64 { return a.alerts.Load() }

// Run implements Check.
func (a *AdminAlert) Run(ctx context.Context, t *Target) Result {
	res, err := t.search(ctx, baseSearch(a.cfg.MonitorDN, a.cfg.DegradedAttribute, a.cfg.UnavailableAttribute))
	switch {
	case err != nil && !isResultError(err):
		return Result{State: backend.Unavailable, Score: 1, Reason: err.Error()}
	case err != nil:
		return Result{State: backend.Available, Score: 10, Reason: fmt.Sprintf("cannot read monitor entry %q: %v", a.cfg.MonitorDN, err)}
	}
	e := firstEntry(res)
	if v := e.GetAttributeValues(a.cfg.UnavailableAttribute); len(v) > 0 {
		return Result{State: backend.Unavailable, Score: 1, Reason: "server reports unavailable alert: " + strings.Join(v, ", ")}
	}
	if v := e.GetAttributeValues(a.cfg.DegradedAttribute); len(v) > 0 {
		return Result{State: backend.Degraded, Score: 5, Reason: "server reports degraded alert: " + strings.Join(v, ", ")}
	}
	return Result{State: backend.Available, Score: 10, Reason: "no alert (" + a.mode() + ")"}
}

// mode says how alerts are followed.
func (a *AdminAlert) mode() string {
	if a.watching.Load() {
		return "persistent search on " + a.cfg.AlertsBaseDN
	}
	return "polling " + a.cfg.MonitorDN
}

// errNoPersistentSearch stops the watcher: the server cannot do it.
var errNoPersistentSearch = errors.New("persistent search not supported")

// Watch implements Watcher: it keeps a persistent search on the alerts
// base while the server supports it, re-establishing it after errors.
func (a *AdminAlert) Watch(ctx context.Context, t *Target) {
	if a.cfg.PollOnly {
		return
	}
	retry := min(max(t.Frequency, time.Second), 30*time.Second)
	for {
		err := a.watchOnce(ctx, t)
		if errors.Is(err, errNoPersistentSearch) || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

// watchOnce runs one persistent search until it fails or ctx ends.
func (a *AdminAlert) watchOnce(ctx context.Context, t *Target) error {
	dctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	conn, err := t.Open(dctx)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	if err := requireControl(conn, OIDPersistentSearch); err != nil {
		return err
	}
	conn.SetTimeout(0) // the search never ends
	resp := conn.SearchAsync(ctx, a.psearchRequest(), 16)
	a.watching.Store(true)
	defer a.watching.Store(false)
	t.Trigger() // no alert can be missed from now on: read the entry
	for resp.Next() {
		a.alerts.Add(1)
		t.Trigger()
	}
	if err := resp.Err(); isResultError(err) {
		return fmt.Errorf("%w: %v", errNoPersistentSearch, err)
	}
	return resp.Err()
}

// requireControl fails with errNoPersistentSearch when the root DSE does
// not list the control.
func requireControl(conn Client, oid string) error {
	conn.SetTimeout(defaultTimeout)
	res, err := conn.Search(baseSearch("", "supportedControl"))
	if err != nil {
		return fmt.Errorf("read supported controls: %w", err)
	}
	if !slices.Contains(firstEntry(res).GetAttributeValues("supportedControl"), oid) {
		return errNoPersistentSearch
	}
	return nil
}

// psearchRequest asks for every change below the alerts base from now on.
func (a *AdminAlert) psearchRequest() *ldap.SearchRequest {
	ctrl := psearchControl{changeTypes: 1 | 2 | 4 | 8, changesOnly: true}
	return ldap.NewSearchRequest(a.cfg.AlertsBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"1.1"}, []ldap.Control{ctrl})
}

// psearchControl is the persistent search request control:
// SEQUENCE { changeTypes INTEGER, changesOnly BOOLEAN, returnECs BOOLEAN }.
type psearchControl struct {
	changeTypes            int64 // add 1, delete 2, modify 4, modDN 8
	changesOnly, returnECs bool
}

// GetControlType implements ldap.Control.
func (c psearchControl) GetControlType() string { return OIDPersistentSearch }

// Encode implements ldap.Control.
func (c psearchControl) Encode() *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, OIDPersistentSearch, "Control Type"))
	p.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "Criticality"))
	value := ber.Encode(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, nil, "Control Value")
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PersistentSearch")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, c.changeTypes, "changeTypes"))
	seq.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, c.changesOnly, "changesOnly"))
	seq.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, c.returnECs, "returnECs"))
	value.AppendChild(seq)
	p.AppendChild(value)
	return p
}

// String implements ldap.Control.
func (c psearchControl) String() string {
	return fmt.Sprintf("Control Type: Persistent Search (%q) changeTypes=%d changesOnly=%t returnECs=%t",
		OIDPersistentSearch, c.changeTypes, c.changesOnly, c.returnECs)
}

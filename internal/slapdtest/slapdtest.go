// Package slapdtest starts real OpenLDAP slapd replicas for tests: ForTest
// wraps internal/slapdrun (which the demo uses without linking package
// testing) with a test's logging, deadline and cleanup. The names below are
// slapdrun's, so tests need only this package.
package slapdtest

import "github.com/ldapmux/ldapmux/internal/slapdrun"

type (
	Cluster = slapdrun.Cluster
	Replica = slapdrun.Replica
	Options = slapdrun.Options
)

// Directory identities, paths and controls: see slapdrun.
const (
	BaseDN            = slapdrun.BaseDN
	AdminDN           = slapdrun.AdminDN
	AdminPassword     = slapdrun.AdminPassword
	ServiceDN         = slapdrun.ServiceDN
	ServicePassword   = slapdrun.ServicePassword
	WriterDN          = slapdrun.WriterDN
	WriterPassword    = slapdrun.WriterPassword
	AppDN             = slapdrun.AppDN
	AppPassword       = slapdrun.AppPassword
	PeopleDN          = slapdrun.PeopleDN
	GroupsDN          = slapdrun.GroupsDN
	StaffGroupDN      = slapdrun.StaffGroupDN
	ScratchDN         = slapdrun.ScratchDN
	RestrictedDN      = slapdrun.RestrictedDN
	SecretDN          = slapdrun.SecretDN
	PolicyDN          = slapdrun.PolicyDN
	SecretDescription = slapdrun.SecretDescription
	ProxiedAuthzOID   = slapdrun.ProxiedAuthzOID
	SortControlOID    = slapdrun.SortControlOID
	VLVControlOID     = slapdrun.VLVControlOID
	SlapdPath         = slapdrun.SlapdPath
	SlapaddPath       = slapdrun.SlapaddPath
	SlaptestPath      = slapdrun.SlaptestPath
	ModulePath        = slapdrun.ModulePath
	SchemaDir         = slapdrun.SchemaDir
	MaxIncomingAuth   = slapdrun.MaxIncomingAuth
	MaxReplicas       = slapdrun.MaxReplicas
)

// Start, the sample users and the proxied authorization control: see slapdrun.
var (
	Start             = slapdrun.Start
	UserDN            = slapdrun.UserDN
	UserID            = slapdrun.UserID
	UserPassword      = slapdrun.UserPassword
	UserMail          = slapdrun.UserMail
	ProxyAuthzControl = slapdrun.ProxyAuthzControl
)

package slapdtest

import (
	"testing"
)

func TestPrep(t *testing.T) {
	o, _ := Options{Users: 20, Dir: "/tmp/tm"}.withDefaults()
	c := &Cluster{opts: o}
	for _, f := range []func() error{c.makeDirs, c.assignPorts, c.writeConfigs, c.loadData} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range c.Replicas {
		t.Log(r.URL)
	}
}

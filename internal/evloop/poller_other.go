//go:build !linux

package evloop

import "errors"

// poller exists only on Linux; elsewhere New fails and callers keep a
// goroutine per socket.
type poller struct{}

const wakeToken = 0

func newPoller() (*poller, error) { return nil, errors.New("evloop: only supported on Linux") }

func (p *poller) add(fd int, tok uint64) error         { return errors.ErrUnsupported }
func (p *poller) del(fd int)                           {}
func (p *poller) wait(serve func(epfd int) bool) error { return errors.ErrUnsupported }
func (p *poller) wake()                                {}
func (p *poller) drainWake()                           {}
func (p *poller) close()                               {}

type event struct{}

func take(epfd int, events []event) (int, error) { return 0, errors.ErrUnsupported }

func eventToken(ev *event) uint64 { return 0 }

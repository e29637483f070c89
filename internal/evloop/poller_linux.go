//go:build linux

package evloop

import (
	"os"
	"syscall"
	"unsafe"
)

// poller is an epoll instance registered in Go's netpoller, so that the
// loop's goroutine parks like any other when nothing is ready, and an
// eventfd that Post and Close use to wake it.
type poller struct {
	file   *os.File // the epoll descriptor, non-blocking, hence pollable
	rc     syscall.RawConn
	wakefd int
}

// epollET is EPOLLET as the unsigned flag the kernel takes (syscall's is negative).
const epollET = 1 << 31

// wakeToken marks the eventfd's events; socket tokens start at 1.
const wakeToken = 0

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	wakefd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	p := &poller{file: os.NewFile(uintptr(epfd), "evloop"), wakefd: int(wakefd)}
	if p.rc, err = p.file.SyscallConn(); err != nil {
		p.close()
		return nil, err
	}
	if err := p.add(p.wakefd, wakeToken); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// add watches fd for reading, edge-triggered (see Handler).
func (p *poller) add(fd int, tok uint64) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET}
	setEventToken(&ev, tok)
	var err error
	if cerr := p.rc.Control(func(epfd uintptr) { err = syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_ADD, fd, &ev) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

func (p *poller) del(fd int) {
	p.rc.Control(func(epfd uintptr) { syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_DEL, fd, nil) })
}

// wait parks until the epoll descriptor is readable, then calls serve,
// until serve returns true.
func (p *poller) wait(serve func(epfd int) bool) error {
	return p.rc.Read(func(epfd uintptr) bool { return serve(int(epfd)) })
}

func (p *poller) wake() {
	one := uint64(1)
	rawWrite(p.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

func (p *poller) drainWake() {
	var buf [8]byte
	rawRead(p.wakefd, buf[:])
}

func (p *poller) close() {
	p.file.Close()
	syscall.Close(p.wakefd)
}

// event is one epoll event.
type event = syscall.EpollEvent

func eventToken(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func setEventToken(ev *syscall.EpollEvent, tok uint64) {
	ev.Fd, ev.Pad = int32(uint32(tok)), int32(uint32(tok>>32))
}

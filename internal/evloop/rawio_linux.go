//go:build linux

package evloop

import (
	"syscall"
	"unsafe"
)

// The loops' system calls never block: sockets are non-blocking and
// epoll_wait is given a zero timeout. They are made raw because
// syscall.Syscall tells the scheduler that the thread may block, and the
// first such call after every P went idle wakes the runtime's monitor
// thread (sysmon), which then polls every 20 µs for a millisecond: on 2
// CPUs under load that came to over a tenth of the proxy's CPU (perf).

// rawRead is read(2) without the scheduler's notice.
func rawRead(fd int, p []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(bufAddr(p)), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// rawWrite is write(2) without the scheduler's notice.
func rawWrite(fd int, p []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(bufAddr(p)), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// take returns the events ready now, without waiting (epoll_pwait with a
// zero timeout and no signal mask: the same call on amd64 and arm64).
func take(epfd int, events []event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

func bufAddr(p []byte) unsafe.Pointer {
	if len(p) == 0 {
		return nil
	}
	return unsafe.Pointer(&p[0])
}

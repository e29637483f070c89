package main

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// takeTerminal makes the demo the terminal's foreground process group when
// it was started inside another program's group (make demo, go run), so
// that Ctrl-C reaches the demo alone: it stops cleanly and exits 0, and the
// program that started it sees that status instead of dying of the signal
// itself ("make: *** Interrupt"). Started from an interactive shell, the
// demo already leads the foreground group and nothing changes. The function
// returned gives the terminal back.
func takeTerminal() (restore func()) {
	fd := os.Stdin.Fd()
	fg, err := foregroundGroup(fd)
	pgrp := syscall.Getpgrp()
	if err != nil || fg != pgrp || pgrp == os.Getpid() {
		return func() {}
	}
	if err := syscall.Setpgid(0, 0); err != nil {
		return func() {}
	}
	// A process group that is not yet the foreground one gets SIGTTOU when
	// it changes the foreground group.
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	if setForegroundGroup(fd, os.Getpid()) != nil {
		syscall.Setpgid(0, pgrp)
		return func() {}
	}
	return func() {
		signal.Ignore(syscall.SIGTTOU)
		defer signal.Reset(syscall.SIGTTOU)
		setForegroundGroup(fd, fg)
	}
}

func foregroundGroup(fd uintptr) (int, error) {
	var pgrp int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp))); errno != 0 {
		return 0, errno
	}
	return int(pgrp), nil
}

func setForegroundGroup(fd uintptr, pgrp int) error {
	p := int32(pgrp)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&p))); errno != 0 {
		return errno
	}
	return nil
}

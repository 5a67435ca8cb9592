package main

import (
	"os"
	"os/exec"
	"syscall"
	"unsafe"
)

// ownGroup has the kernel kill cmd should dlock itself die, and, unless
// it runs on a terminal, starts it in a process group of its own, so that
// stopping it stops whatever it started too (a shell's children, a
// script's): a command must never go on working without the hold. On a
// terminal it stays in dlock's group, which the terminal's signals reach
// whole, since a command in a group of its own could not read the
// terminal.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: !terminal(os.Stdin)}
}

// signalGroup sends sig to every process of cmd's group, or to cmd alone
// if it runs in dlock's.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr.Setpgid {
		syscall.Kill(-cmd.Process.Pid, sig)
		return
	}
	cmd.Process.Signal(sig)
}

// terminal reports whether f is a terminal.
func terminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// ownGroup leaves cmd in dlock's process group: only Linux lets dlock
// stop a command's whole tree, and have it killed if dlock dies.
func ownGroup(*exec.Cmd) {}

// signalGroup sends sig to cmd alone.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	cmd.Process.Signal(sig)
}

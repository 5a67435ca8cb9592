//go:build !linux

package testenv

import (
	"syscall"
	"time"
)

// SysProcAttr has no way outside Linux to tie a server's life to the
// test process; a test binary killed without cleanup leaves it running.
func SysProcAttr() *syscall.SysProcAttr { return nil }

// waitStopped cannot observe the stop outside Linux, so Pause returns
// once the signal is sent.
func waitStopped(int, time.Duration) error { return nil }

//go:build !linux

package testenv

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// SysProcAttr has no way outside Linux to tie a server's life to the
// test process; a test binary killed without cleanup leaves it running.
func SysProcAttr() *syscall.SysProcAttr { return nil }

// waitStopped cannot observe the stop outside Linux, so Pause returns
// once the signal is sent.
func waitStopped(int, time.Duration) error { return nil }

// Caller cannot tell outside Linux which process opened a connection.
func Caller(net.Conn, []*Process) (int, error) {
	return -1, errors.New("telling which process opened a connection needs Linux")
}

package testenv

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Caller returns the index in procs of the process that opened c, a TCP
// connection over IPv4 loopback that this process accepted: a proxy
// between servers tells by it which server calls, where the servers
// cannot be told to call each other on different addresses. It finds the
// socket of c's other end in /proc/net/tcp, and that socket among each
// process's file descriptors.
func Caller(c net.Conn, procs []*Process) (int, error) {
	them, us := c.RemoteAddr().(*net.TCPAddr), c.LocalAddr().(*net.TCPAddr)
	if them == nil || us == nil || them.IP.To4() == nil || us.IP.To4() == nil {
		return -1, fmt.Errorf("caller of %v: not a TCP connection over IPv4", c.RemoteAddr())
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1, err
	}
	local, remote := procNetAddr(them), procNetAddr(us)
	socket := ""
	for _, line := range strings.Split(string(data), "\n") {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if f := strings.Fields(line); len(f) > 9 && f[1] == local && f[2] == remote {
			socket = "socket:[" + f[9] + "]"
			break
		}
	}
	if socket == "" {
		return -1, fmt.Errorf("caller of %v: no such socket, closed already", them)
	}
	for i, p := range procs {
		pid := p.Pid()
		if pid == 0 {
			continue
		}
		dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // exited meanwhile
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + fd.Name()); err == nil && link == socket {
				return i, nil
			}
		}
	}
	return -1, fmt.Errorf("caller of %v: none of the processes", them)
}

// procNetAddr formats a as /proc/net/tcp does: the address as a number in
// the machine's byte order, and the port, both in hexadecimal.
func procNetAddr(a *net.TCPAddr) string {
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.IP.To4()), a.Port)
}

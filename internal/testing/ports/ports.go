// Package ports finds free loopback ports for the servers the tests and
// examples start.
package ports

import "net"

// Free returns n distinct TCP ports that were free on 127.0.0.1 a moment
// ago. Holding every listener until all are chosen keeps the n ports
// distinct; another process may still take one before the caller binds
// it, which callers handle by retrying a failed start.
func Free(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

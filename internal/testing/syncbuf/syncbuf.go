// Package syncbuf serialises the output of goroutines that print at
// once, for the examples and their tests.
package syncbuf

import (
	"io"
	"strings"
	"sync"
)

// Writer passes each Write on to W, one at a time.
type Writer struct {
	mu sync.Mutex
	W  io.Writer
}

// Write writes p to W.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.W.Write(p)
}

// Buffer keeps what is written, to read back while writers run.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

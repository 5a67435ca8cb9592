package zklock

import (
	"encoding/binary"
	"slices"
	"testing"
)

// frames finds every frame's xid however the stream is cut into reads.
func TestFramesScan(t *testing.T) {
	var stream []byte
	var want []int32
	for i, body := range []int{4, 16, 1000, 5, 20} {
		xid := int32(i) - 2
		frame := binary.BigEndian.AppendUint32(nil, uint32(body))
		frame = binary.BigEndian.AppendUint32(frame, uint32(xid))
		frame = append(frame, make([]byte, body-4)...)
		stream = append(stream, frame...)
		want = append(want, xid)
	}
	for size := 1; size <= len(stream); size++ {
		var f frames
		var got []int32
		for chunk := range slices.Chunk(stream, size) {
			got = f.scan(chunk, got)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("reads of %d bytes: xids %v, want %v", size, got, want)
		}
	}
}

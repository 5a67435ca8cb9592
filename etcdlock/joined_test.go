package etcdlock

import (
	"testing"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
)

// A join's read is the queue when it holds every key under the name, each
// a contender; otherwise the caller must read the queue.
func TestJoinedQueue(t *testing.T) {
	const prefix = "/locks/a/"
	kv := func(node string, rev int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(prefix + node), CreateRevision: rev, ModRevision: rev, Version: 1}
	}
	read := func(more bool, kvs ...*mvccpb.KeyValue) *pb.ResponseOp {
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Kvs: kvs, More: more}}}
	}
	keys := func(q []queue.Contender) []string {
		var ks []string
		for _, c := range q {
			ks = append(ks, c.Key[len(prefix):])
		}
		return ks
	}
	self, holder, before := kv("lock-b", 30), kv("694d7b2a1c", 20), kv("lock-c", 10)

	require.Equal(t, []string{"lock-b"}, keys(joinedQueue(turnstile.Exclusive, prefix, read(false, self))), "alone")
	require.Equal(t, []string{"694d7b2a1c", "lock-b"}, keys(joinedQueue(turnstile.Exclusive, prefix, read(false, self, holder))),
		"behind the holder alone, in create order")
	require.Nil(t, joinedQueue(turnstile.Exclusive, prefix, read(true, self, holder)), "more keys before the predecessor")
	require.Nil(t, joinedQueue(turnstile.Exclusive, prefix, read(false, self, kv("b/lock-x", 20))), "a nested name's key")
	require.Equal(t, []string{"lock-c", "694d7b2a1c", "lock-b"}, keys(joinedQueue(turnstile.Shared, prefix, read(false, before, holder, self))),
		"a shared contender's read is in create order already")
}

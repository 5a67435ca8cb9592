package etcdlock_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
)

// A Lock that gives up while its join is still on the way undoes the join
// once its outcome is known, and not before: a key given back while the
// put may land would be put again by the session's next Lock on the name,
// and the late join's undo would then delete that hold's key, or the late
// put would be taken for the next join's own, and two values would hold
// with one token.
func TestJoinLandingAfterItsCallerLeft(t *testing.T) {
	ctx := context.Background()
	name := locktest.Name()
	delay := 700 * time.Millisecond
	landed := make(chan struct{})
	var delayed atomic.Bool
	cfg := etcdtest.ClientConfig(shared.Get(t).Endpoints()...)
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			txn, ok := req.(*pb.TxnRequest)
			if !ok || len(txn.Success) == 0 || !strings.HasPrefix(string(txn.Success[0].GetRequestPut().GetKey()), name+"/") {
				return invoke(ctx, method, req, reply, cc, opts...)
			}
			if delayed.Swap(true) {
				return invoke(ctx, method, req, reply, cc, opts...) // the first join alone, on its one attempt
			}
			time.Sleep(delay)
			defer close(landed)
			return invoke(ctx, method, req, reply, cc, opts...)
		}))
	cli, err := clientv3.New(cfg)
	require.NoError(t, err)
	defer cli.Close()
	m := etcdlock.NewMutex(session(t, cli), name)
	other := etcdlock.NewMutex(session(t, shared.Get(t).Client(t)), name)

	gaveUp, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	require.ErrorIs(t, m.Lock(gaveUp), context.DeadlineExceeded)
	cancel()
	time.Sleep(100 * time.Millisecond) // the first join is still on its way
	require.NoError(t, m.Lock(ctx))
	token := m.Token()
	<-landed
	// The late put's undo leaves the hold's key alone, and nothing else.
	e := env(shared.Get(t).Endpoints()...)
	locktest.Eventually(t, 5*time.Second, "one key left: the hold's", func() bool { return e.Queued(t, name) == 1 })
	time.Sleep(500 * time.Millisecond) // for an undo that would come later
	require.Equal(t, 1, e.Queued(t, name))
	require.ErrorIs(t, other.TryLock(ctx), turnstile.ErrLocked)
	require.Equal(t, token, m.Token())
	select {
	case <-m.Lost():
		t.Fatal("the hold was lost")
	default:
	}
	require.NoError(t, m.Unlock(ctx))
	require.NoError(t, other.TryLock(ctx))
	require.NoError(t, other.Unlock(ctx))
}

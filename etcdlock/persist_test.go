package etcdlock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A call that fails on the way, or for overload, is made again until it
// has an answer; one the server refused for good is not; and ctx's end
// stops the repeats.
func TestPersist(t *testing.T) {
	ctx := context.Background()
	calls := 0
	failing := func(errs ...error) func(context.Context) (int, error) {
		calls = 0
		return func(context.Context) (int, error) {
			calls++
			if calls <= len(errs) {
				return 0, errs[calls-1]
			}
			return calls, nil
		}
	}
	eof := status.Error(codes.Unavailable, "error reading from server: EOF")
	v, err := persist(ctx, failing(eof, rpctypes.ErrTooManyRequests, rpctypes.ErrLeaderChanged))
	require.NoError(t, err)
	require.Equal(t, 4, v)

	denied := rpctypes.ErrPermissionDenied
	_, err = persist(ctx, failing(denied, eof))
	require.ErrorIs(t, err, denied)
	require.Equal(t, 1, calls)

	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	down := func(context.Context) (int, error) { return 0, eof }
	_, err = persist(ctx, down)
	require.True(t, errors.Is(err, eof) || errors.Is(err, context.DeadlineExceeded), "%v", err)
	require.Error(t, ctx.Err())
}

// Writes begun close together share a context, which ends with the
// session; a write begun a window later gets another.
func TestWriteContexts(t *testing.T) {
	session, end := context.WithCancel(context.Background())
	var w writeContexts
	first := w.context(session)
	require.True(t, first == w.context(session), "a write begun at once shares the context")
	w.current.Load().until = time.Now() // the window has passed
	second := w.context(session)
	require.True(t, first != second, "a write begun a window later gets another")
	require.NoError(t, first.Err(), "a context ends writeTimeout after its window, not before")
	end()
	require.Error(t, first.Err(), "the session's end ends every write")
	require.Error(t, second.Err(), "the session's end ends every write")
}

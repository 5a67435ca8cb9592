package bench

import (
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
)

// The etcd herd's 256 contenders all queue while they hand the lock on,
// and hand it on: the contended run at N = 256 needs them to. Sharing
// one client, they took minutes to start watching behind the stream of
// events each hand-off sends them all, and the run gave up.
func TestEtcdHerdQueues256(t *testing.T) {
	srv := etcdtest.StartServer(t)
	s, err := Etcd(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.round(t.Context(), s.Contestants[Herd], 256, func(r *run) error {
		_, err := s.contend(r, 0, 1, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

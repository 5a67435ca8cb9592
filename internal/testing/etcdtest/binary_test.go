package etcdtest

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// The tool module builds etcd and etcdctl at the version of the client
// the library is built with, so that the servers are the ones its users
// talk to and etcdctl's recipes are the client module's.
func TestToolVersions(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		testenv.Unavailable(t, "the go command: %v", err)
	}
	version := func(dir, module string) string {
		t.Helper()
		v, err := goCmd(dir, "list", "-m", "-f", "{{.Version}}", module)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	gomod, err := goCmd("", "env", "GOMOD")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(gomod)
	tools := filepath.Join(root, filepath.FromSlash(toolModule))
	client := version(root, "go.etcd.io/etcd/client/v3")
	for _, module := range []string{serverModule, etcdctlModule, "go.etcd.io/etcd/client/v3"} {
		if got := version(tools, module); got != client {
			t.Errorf("%s builds %s %s; the library's client is %s", toolModule, module, got, client)
		}
	}
}

package examples_test

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The compose file is checked without a Docker engine: the services, the
// pinned versions (etcd's the one the examples embed and the tests build,
// from internal/testing/embedetcd's go.mod), health checks, ports
// published on loopback alone, named volumes, a consistent ensemble and
// cluster, and the endpoints the README tells users to export.
func TestDockerCompose(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string
			Ports       []string
			Volumes     []string
			Environment map[string]string
			Command     []string
			Healthcheck struct{ Test []string }
		}
		Volumes map[string]any
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(maps.Keys(c.Services))
	if want := []string{"etcd1", "etcd2", "etcd3", "zk1", "zk2", "zk3"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	gomod, err := os.ReadFile("../internal/testing/embedetcd/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	etcdVersion := regexp.MustCompile(`go\.etcd\.io/etcd/server/v3 (v\S+)`).FindSubmatch(gomod)
	if etcdVersion == nil {
		t.Fatal("no etcd server in internal/testing/embedetcd/go.mod")
	}

	published := map[string][]string{} // "zk", "etcd": host endpoints in service order
	for _, name := range names {
		s := c.Services[name]
		kind := strings.TrimRight(name, "123")
		id := strings.TrimPrefix(name, kind)
		switch kind {
		case "zk":
			// ZooKeeper 3.8, as Debian's package the tests run.
			if !regexp.MustCompile(`^zookeeper:3\.8\.\d+$`).MatchString(s.Image) {
				t.Errorf("%s: image %q, want zookeeper:3.8.x", name, s.Image)
			}
			if s.Environment["ZOO_MY_ID"] != id {
				t.Errorf("%s: ZOO_MY_ID %q", name, s.Environment["ZOO_MY_ID"])
			}
			for _, peer := range []string{"1", "2", "3"} {
				if !strings.Contains(s.Environment["ZOO_SERVERS"], fmt.Sprintf("server.%s=zk%s:2888:3888;2181", peer, peer)) {
					t.Errorf("%s: ZOO_SERVERS %q lacks zk%s", name, s.Environment["ZOO_SERVERS"], peer)
				}
			}
		case "etcd":
			if want := "gcr.io/etcd-development/etcd:" + string(etcdVersion[1]); s.Image != want {
				t.Errorf("%s: image %q, want %q", name, s.Image, want)
			}
			cmd := strings.Join(s.Command, " ")
			for _, want := range []string{"--name=" + name, "--initial-cluster=etcd1=http://etcd1:2380,etcd2=http://etcd2:2380,etcd3=http://etcd3:2380"} {
				if !strings.Contains(cmd, want) {
					t.Errorf("%s: command lacks %s", name, want)
				}
			}
		}
		if len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s: no health check", name)
		}
		if len(s.Ports) != 1 || !strings.HasPrefix(s.Ports[0], "127.0.0.1:") {
			t.Errorf("%s: ports %q, want one published on 127.0.0.1", name, s.Ports)
		} else {
			host := strings.Join(strings.Split(s.Ports[0], ":")[:2], ":")
			published[kind] = append(published[kind], host)
			if kind == "etcd" && !slices.Contains(s.Command, "--advertise-client-urls=http://"+host) {
				t.Errorf("%s: does not advertise %s, where clients reach it", name, host)
			}
		}
		if len(s.Volumes) == 0 {
			t.Errorf("%s: no volume", name)
		}
		for _, v := range s.Volumes {
			if _, ok := c.Volumes[strings.Split(v, ":")[0]]; !ok {
				t.Errorf("%s: volume %q is not a named volume", name, v)
			}
		}
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for kind, env := range map[string]string{"zk": "ZK_SERVERS", "etcd": "ETCD_ENDPOINTS"} {
		want := "export " + env + "=" + strings.Join(published[kind], ",")
		for _, doc := range []string{"README.md", "docker-compose.yml"} {
			text := string(readme)
			if doc == "docker-compose.yml" {
				text = string(b)
			}
			if !strings.Contains(text, want) {
				t.Errorf("%s does not say %q", doc, want)
			}
		}
	}
}

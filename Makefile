# The one command behind the README's test instructions and CI:
#   make test
# installs what the tests need from Debian's packages when it is missing
# (ZooKeeper; Apache Curator and a JDK to compile the small Java program
# that drives it; kazoo for Debian's python3) and runs vet and the whole
# suite with the race detector, then each fuzz target for a few seconds.
# The fuzzing budget is a count of inputs, not a time: with a time, Go
# 1.26's fuzzing coordinator can report its own deadline as a failure
# (go.dev/issue/75804). etcd and etcdctl need no install: the tests build
# them from their Go modules.
#
# The repository holds four modules: the library at the root, and beside
# it what the library's users must not inherit in their module graphs:
# etcd's server (internal/testing/embedetcd, which the examples embed and
# the tests build etcd and etcdctl from), the examples and the
# benchmarks. go.work joins them for `go run ./examples/...`; the
# targets below vet and test each module on its own, outside the
# workspace, as its own go.mod builds it.

ZK_JAR := /usr/share/java/zookeeper.jar
CURATOR_JAR := /usr/share/java/curator-recipes.jar
SLF4J_JAR := /usr/share/java/slf4j-simple.jar
KAZOO := /usr/lib/python3/dist-packages/kazoo
# gcc and libc6-dev: the race detector needs cgo.
PACKAGES := zookeeper libcurator-recipes-java libslf4j-java python3-kazoo default-jdk-headless gcc libc6-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MODULES := . internal/testing/embedetcd examples benchmarks
export GOWORK := off

.PHONY: test deps
test: deps
	for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	for m in $(MODULES); do (cd $$m && go test -race -count=1 ./...) || exit 1; done
	go test -run XXX -fuzz FuzzValidateName -fuzztime 100000x .
	go test -run XXX -fuzz FuzzParseSequencer -fuzztime 200000x .
	go test -run XXX -fuzz FuzzParse -fuzztime 200000x ./zklock/internal/znode

deps:
	@if [ ! -f $(ZK_JAR) ] || [ ! -f $(CURATOR_JAR) ] || [ ! -f $(SLF4J_JAR) ] || [ ! -d $(KAZOO) ] \
		|| ! command -v java >/dev/null || ! command -v javac >/dev/null || [ ! -x /usr/bin/python3 ] \
		|| ! command -v gcc >/dev/null || [ ! -f /usr/include/stdlib.h ]; then \
		echo "installing $(PACKAGES) (Debian packages)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(PACKAGES); \
	fi

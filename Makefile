# The one command behind the README's test instructions and CI:
#   make test
# installs what the tests need (ZooKeeper, from Debian's packages, when it
# is missing) and runs vet and the whole suite with the race detector,
# then each fuzz target for a few seconds. The fuzzing budget is a count of
# inputs, not a time: with a time, Go 1.26's fuzzing coordinator can
# report its own deadline as a failure (go.dev/issue/75804).
# etcd needs no install: the tests build it from its Go module.

ZK_JAR := /usr/share/java/zookeeper.jar
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test deps
test: deps
	go vet ./...
	go test -race -count=1 ./...
	go test -run XXX -fuzz FuzzValidateName -fuzztime 100000x .
	go test -run XXX -fuzz FuzzParseSequencer -fuzztime 200000x .

deps:
	@if [ ! -f $(ZK_JAR) ] || ! command -v java >/dev/null; then \
		echo "installing ZooKeeper (Debian package zookeeper)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends zookeeper; \
	fi

package turnstile

import "time"

// A Participant is one contender in a name's queue, whichever client put
// it there, as a session's Participants method lists it: the first
// question an operator asks of a lock that seems stuck is who holds it,
// who waits, and since when.
type Participant struct {
	// Key is the contender on the server: a znode path on ZooKeeper, a
	// key on etcd.
	Key string
	// Kind is how it shares the name: Exclusive (a mutex, a writer, or
	// any other client's contender not marked as a reader), Shared,
	// Candidate, or Permit (a semaphore's).
	Kind Kind
	// Holds reports that it holds now, or leads, by the queue rules.
	Holds bool
	// Token is its fencing token: its node's czxid or its key's create
	// revision.
	Token int64
	// Identity is what it stored in its node or key: by default a
	// turnstile contender's host name and process id, an election
	// candidate's id, Curator's host address, kazoo's identifier.
	Identity string
	// Client names the client that wrote it, where its name tells:
	// "turnstile", "Curator", "kazoo", "zk.Lock" (go-zookeeper),
	// "ZooKeeper recipe" (ZooKeeper's own WriteLock), or
	// "etcd concurrency" (etcd's concurrency package and etcdctl).
	// Empty when the name does not tell.
	Client string
	// Since is when it joined, where the server records it (ZooKeeper);
	// zero on etcd, which keeps no time with a key.
	Since time.Time
}

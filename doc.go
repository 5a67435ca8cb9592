// Package turnstile holds the vocabulary shared by its coordination
// recipes on ZooKeeper and etcd: fair blocking locks, read-write locks,
// counting semaphores and leader election.
//
// A turnstile lets people through one at a time, in the order they came,
// and counts each passage. Every recipe is one queue of contenders kept
// by the server in its own order (a ZooKeeper sequence number, an etcd
// create revision); each waiter watches only the one contender it must
// wait for, so a release wakes only whom it admits. Every hold carries a
// fencing token, the server's number for the contender that holds, which
// grows with every grant and lets a protected resource refuse a former
// holder that lost its hold without knowing it.
//
// The packages:
//
//   - zklock: a session on ZooKeeper, and NewMutex on it.
//   - etcdlock: a session on etcd, and NewMutex on it.
//   - mutex: the Mutex both return, over either session.
//   - rwlock: a read-write lock over either session.
//   - election: leader election and leader-elected workers over either
//     session.
//   - semaphore: a counting semaphore over either session.
//
// This package has what a protected resource uses: Sequencer, a hold's
// name, mode and token in a form that travels in a header, and Fence, the
// guard that refuses a former holder's late operation. It also has the
// errors every recipe returns (match them with errors.Is), ValidateName,
// Session, what the recipes that run over either backend take (a
// *zklock.Session or an *etcdlock.Session), and Participant, what a
// session's Participants lists of a name's queue.
package turnstile

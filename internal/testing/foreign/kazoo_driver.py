"""Runs one kazoo recipe for a Go test.

The test writes one command a line on stdin and reads one reply a line
on stdout; see package foreign for the protocol. Logs go to stderr only,
so that stdout carries nothing but replies.

Usage: python3 -c <this source> <connect string> <recipe> <path> <id> [patterns]
with recipe one of lock, read, write, election, and patterns the
comma-separated regex fragments given to kazoo as extra_lock_patterns.
"""

import logging
import sys
import threading

# Short, so that a killed driver's nodes vanish soon; 4 s is also the
# longest session a test server with a 200 ms tick grants.
SESSION_SECONDS = 4.0


class LockRecipe:
    def __init__(self, lock):
        self.lock = lock

    def acquire(self):
        # kazoo's locks are not reentrant: a second acquire would wait
        # for itself forever.
        if self.lock.is_acquired:
            raise RuntimeError("already held")
        self.lock.acquire()
        return self.lock.node or "-"

    def release(self):
        # release deletes the node before it returns; it answers False
        # when there was nothing to release.
        if not self.lock.release():
            raise RuntimeError("not held")

    def participants(self):
        return self.lock.contenders()


class ElectionRecipe:
    def __init__(self, election):
        self.election = election
        self.lock = election.lock  # for participants and leader
        self.thread = None
        self.resign = None

    def acquire(self):
        if self.thread is not None:
            raise RuntimeError("already in the election")
        entered = threading.Event()
        resign = threading.Event()

        def lead():
            entered.set()
            resign.wait()

        # run blocks until the leader function returns: it gets a thread
        # of its own so that this one keeps reading commands after it.
        thread = threading.Thread(target=self.election.run, args=(lead,), daemon=True)
        thread.start()
        while not entered.wait(0.05):
            if not thread.is_alive():
                raise RuntimeError("election ended without leading; see the log")
        self.thread, self.resign = thread, resign
        return self.lock.node or "-"

    def release(self):
        if self.thread is None:
            raise RuntimeError("not in the election")
        self.resign.set()
        # run releases the lock, deleting its node, before it returns.
        self.thread.join()
        self.thread = self.resign = None

    def participants(self):
        return self.election.contenders()


def main():
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Whatever a library prints lands in the log, not in the replies.
    out = sys.stdout
    sys.stdout = sys.stderr

    def reply(line):
        out.write(line + "\n")
        out.flush()

    args = sys.argv[1:]
    if len(args) not in (4, 5):
        print("usage: <connect> <recipe> <path> <id> [patterns]", file=sys.stderr)
        sys.exit(2)
    connect, recipe, path, ident = args[:4]
    patterns = [p for p in args[4].split(",") if p] if len(args) == 5 else []

    from kazoo.client import KazooClient
    from kazoo.recipe.election import Election
    from kazoo.recipe.lock import Lock, ReadLock, WriteLock

    zk = KazooClient(hosts=connect, timeout=SESSION_SECONDS)
    zk.start(timeout=30)

    if recipe in ("lock", "read", "write"):
        cls = {"lock": Lock, "read": ReadLock, "write": WriteLock}[recipe]
        r = LockRecipe(cls(zk, path, ident, extra_lock_patterns=patterns))
    elif recipe == "election":
        election = Election(zk, path, ident)
        # Election takes no patterns; its lock does.
        election.lock = Lock(zk, path, ident, extra_lock_patterns=patterns)
        r = ElectionRecipe(election)
    else:
        print("unknown recipe " + recipe, file=sys.stderr)
        sys.exit(2)
    reply("ready")

    for line in sys.stdin:
        line = line.rstrip("\n")
        if line == "quit":
            break
        try:
            if line == "acquire":
                reply("held " + r.acquire())
            elif line == "release":
                r.release()
                reply("released")
            elif line == "leader":
                contenders = r.participants()
                reply("leader " + (contenders[0] if contenders else ""))
            elif line == "participants":
                reply("participants " + " ".join(r.participants()))
            else:
                raise ValueError("unknown command " + line)
        except Exception as e:
            logging.exception("%s failed", line)
            reply("error " + repr(e).replace("\n", " "))

    # Closing the session deletes this client's ephemeral nodes at once
    # instead of when the session expires.
    zk.stop()
    zk.close()


main()

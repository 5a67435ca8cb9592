// Driver runs one Apache Curator recipe for a Go test, which drives it
// with one command a line on stdin and reads one reply a line on stdout;
// see package foreign for the protocol. Logs go to stderr only, so that
// stdout carries nothing but replies.
//
// Usage: java Driver <connect string> <recipe> <path> <id>
// with recipe one of mutex, read, write, latch, selector.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;

public final class Driver {
    // Short, so that a killed driver's nodes vanish soon; 4 s is also the
    // longest session a test server with a 200 ms tick grants.
    static final int SESSION_MS = 4000;
    // How long a release waits for the recipe's node to be deleted: some
    // recipes delete it in the background, and the Go side relies on
    // "released" meaning the node is gone.
    static final long GONE_MS = 10_000;

    // When the client learned that its session was lost, in milliseconds
    // since the epoch, since the last "lost" command.
    static final List<Long> losses = new ArrayList<>();

    interface Recipe {
        String acquire() throws Exception;

        void release() throws Exception;

        String leader() throws Exception;

        List<String> participants() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        // slf4j-simple reads its level when the first logger is made;
        // a -D on the command line still wins.
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        // Whatever a library prints lands in the log, not in the replies.
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        if (args.length != 4) {
            System.err.println("usage: Driver <connect> <recipe> <path> <id>");
            System.exit(2);
        }
        String connect = args[0], recipe = args[1], path = args[2], id = args[3];
        byte[] idBytes = id.getBytes(StandardCharsets.UTF_8);

        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connect)
                .sessionTimeoutMs(SESSION_MS)
                // Curator warns when this exceeds the session timeout.
                .connectionTimeoutMs(SESSION_MS)
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 1000))
                // InterProcessMutex writes the framework's default data,
                // the host's address unless set; the id tells holders apart.
                .defaultData(idBytes)
                .build();
        // LOST: the session expired, or Curator presumes so, having been
        // disconnected for a session timeout. Its locks do not say.
        client.getConnectionStateListenable().addListener((c, state) -> {
            if (state == ConnectionState.LOST) {
                synchronized (losses) {
                    losses.add(System.currentTimeMillis());
                }
            }
        });
        client.start();
        if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
            System.err.println("not connected to " + connect + " after 30s");
            System.exit(1);
        }

        Recipe r;
        switch (recipe) {
            case "mutex":
                r = new Lock(client, new InterProcessMutex(client, path));
                break;
            case "read":
                r = new Lock(client, new InterProcessReadWriteLock(client, path, idBytes).readLock());
                break;
            case "write":
                r = new Lock(client, new InterProcessReadWriteLock(client, path, idBytes).writeLock());
                break;
            case "latch":
                r = new Latch(client, path, id);
                break;
            case "selector":
                r = new Selector(client, path, id);
                break;
            default:
                System.err.println("unknown recipe " + recipe);
                System.exit(2);
                return;
        }
        out.println("ready");

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null && !line.equals("quit");) {
            String reply;
            try {
                switch (line) {
                    case "acquire":
                        reply = "held " + r.acquire();
                        break;
                    case "release":
                        r.release();
                        reply = "released";
                        break;
                    case "leader":
                        reply = "leader " + r.leader();
                        break;
                    case "lost":
                        synchronized (losses) {
                            StringBuilder b = new StringBuilder("lost");
                            for (long ms : losses) {
                                b.append(' ').append(ms);
                            }
                            losses.clear();
                            reply = b.toString();
                        }
                        break;
                    case "participants":
                        reply = "participants " + String.join(" ", r.participants());
                        break;
                    default:
                        throw new IllegalArgumentException("unknown command " + line);
                }
            } catch (Exception e) {
                e.printStackTrace();
                reply = "error " + String.valueOf(e).replace('\n', ' ');
            }
            out.println(reply);
        }
        // Closing the session deletes this client's ephemeral nodes at
        // once instead of when the session expires.
        client.close();
        // Recipe executors may hold non-daemon threads.
        System.exit(0);
    }

    static String nodeName(String path) {
        return path.substring(path.lastIndexOf('/') + 1);
    }

    static void waitGone(CuratorFramework client, String path) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(GONE_MS);
        while (client.checkExists().forPath(path) != null) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(path + " still exists " + GONE_MS + "ms after release");
            }
            Thread.sleep(5);
        }
    }

    // Lock is InterProcessMutex and either side of InterProcessReadWriteLock,
    // which are InterProcessMutexes with other node names.
    static final class Lock implements Recipe {
        // InterProcessMutex keeps its node's path behind a protected getter.
        static final Method LOCK_PATH;

        static {
            try {
                LOCK_PATH = InterProcessMutex.class.getDeclaredMethod("getLockPath");
                LOCK_PATH.setAccessible(true);
            } catch (NoSuchMethodException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        final CuratorFramework client;
        final InterProcessMutex mutex;
        String held;

        Lock(CuratorFramework client, InterProcessMutex mutex) {
            this.client = client;
            this.mutex = mutex;
        }

        public String acquire() throws Exception {
            mutex.acquire();
            held = (String) LOCK_PATH.invoke(mutex);
            return held == null ? "-" : nodeName(held);
        }

        public void release() throws Exception {
            mutex.release();
            // A reentrant hold keeps its node until the last release.
            if (held != null && !mutex.isAcquiredInThisProcess()) {
                waitGone(client, held);
                held = null;
            }
        }

        public String leader() {
            throw new UnsupportedOperationException("a lock has no leader");
        }

        public List<String> participants() throws Exception {
            List<String> ids = new ArrayList<>();
            for (String node : mutex.getParticipantNodes()) {
                try {
                    ids.add(new String(client.getData().forPath(node), StandardCharsets.UTF_8));
                } catch (KeeperException.NoNodeException e) {
                    // released between listing and reading
                }
            }
            return ids;
        }
    }

    static List<String> ids(Collection<Participant> participants) {
        List<String> ids = new ArrayList<>();
        for (Participant p : participants) {
            ids.add(p.getId());
        }
        return ids;
    }

    static final class Latch implements Recipe {
        final CuratorFramework client;
        final String path, id;
        // A latch answers getLeader and getParticipants without being
        // started, and then takes no part: queries use this one, so that
        // they work whether or not this driver leads.
        final LeaderLatch observer;
        LeaderLatch latch;

        Latch(CuratorFramework client, String path, String id) {
            this.client = client;
            this.path = path;
            this.id = id;
            this.observer = new LeaderLatch(client, path, id);
        }

        public String acquire() throws Exception {
            if (latch != null) {
                throw new IllegalStateException("already in the election");
            }
            // A closed latch cannot start again: one per term.
            latch = new LeaderLatch(client, path, id);
            latch.start();
            latch.await();
            return nodeName(latch.getOurPath());
        }

        public void release() throws Exception {
            if (latch == null) {
                throw new IllegalStateException("not in the election");
            }
            String ours = latch.getOurPath();
            latch.close();
            latch = null;
            if (ours != null) {
                waitGone(client, ours);
            }
        }

        public String leader() throws Exception {
            return observer.getLeader().getId();
        }

        public List<String> participants() throws Exception {
            return ids(observer.getParticipants());
        }
    }

    static final class Selector implements Recipe {
        final CuratorFramework client;
        final String path, id;
        final LeaderSelector observer; // never started, as Latch's
        LeaderSelector selector;
        CountDownLatch resign;
        String ours;

        Selector(CuratorFramework client, String path, String id) {
            this.client = client;
            this.path = path;
            this.id = id;
            this.observer = new LeaderSelector(client, path, new LeaderSelectorListenerAdapter() {
                public void takeLeadership(CuratorFramework c) {
                }
            });
        }

        public String acquire() throws Exception {
            if (selector != null) {
                throw new IllegalStateException("already in the election");
            }
            CountDownLatch entered = new CountDownLatch(1);
            CountDownLatch resign = new CountDownLatch(1);
            LeaderSelector s = new LeaderSelector(client, path, new LeaderSelectorListenerAdapter() {
                public void takeLeadership(CuratorFramework c) throws InterruptedException {
                    entered.countDown();
                    resign.await();
                }
            });
            s.setId(id);
            s.start();
            selector = s;
            this.resign = resign;
            entered.await();
            ours = findOurs();
            return ours == null ? "-" : nodeName(ours);
        }

        // LeaderSelector does not tell its node. While it leads, its node
        // is the lowest of those holding its id, the data it writes.
        String findOurs() throws Exception {
            String best = null;
            long bestSeq = Long.MAX_VALUE;
            for (String child : client.getChildren().forPath(path)) {
                String full = path + "/" + child;
                byte[] data;
                try {
                    data = client.getData().forPath(full);
                } catch (KeeperException.NoNodeException e) {
                    continue;
                }
                if (!Arrays.equals(data, id.getBytes(StandardCharsets.UTF_8)) || child.length() < 10) {
                    continue;
                }
                long seq;
                try {
                    seq = Long.parseLong(child.substring(child.length() - 10));
                } catch (NumberFormatException e) {
                    continue;
                }
                if (seq < bestSeq) {
                    best = full;
                    bestSeq = seq;
                }
            }
            return best;
        }

        public void release() throws Exception {
            if (selector == null) {
                throw new IllegalStateException("not in the election");
            }
            // takeLeadership returns and the selector deletes its node on
            // its own thread; closing it first would interrupt that.
            resign.countDown();
            if (ours != null) {
                waitGone(client, ours);
            }
            selector.close();
            selector = null;
            ours = null;
        }

        public String leader() throws Exception {
            return observer.getLeader().getId();
        }

        public List<String> participants() throws Exception {
            return ids(observer.getParticipants());
        }
    }
}

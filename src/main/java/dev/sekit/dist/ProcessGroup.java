package dev.sekit.dist;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeProcessGroup;
import java.lang.foreign.Arena;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;

/**
 * A group of processes that train together, on PyTorch's c10d with the Gloo backend (CPU).
 * Processes meet as under {@code torchrun}: rank 0 hosts a TCPStore at
 * {@code MASTER_ADDR:MASTER_PORT}, the others connect to it, then every pair of ranks
 * connects directly. Collectives ({@link #allReduce}, {@link #broadcast}, {@link #barrier},
 * {@link #allGather}) run on contiguous CPU tensors, must be called by every rank in the
 * same order, and end within the {@linkplain #timeout() timeout}: a rank that died or hangs
 * makes the others' calls throw a {@link dev.sekit.SekitException} with code
 * {@code DISTRIBUTED} whose message names the lost rank. Before the data moves, the ranks
 * compare their calls (which collective, its reduction or root, the tensor's dtype and shape:
 * one small all-gather): calls that differ throw a {@code DISTRIBUTED} exception naming the
 * difference on every rank, and nothing is sent. One thread at a time may use a group.
 *
 * <pre>{@code
 * try (ProcessGroup pg = ProcessGroup.fromEnvironment()) {   // torchrun's variables
 *   pg.allReduce(t, ReduceOp.AVG);
 * }
 * }</pre>
 */
public final class ProcessGroup implements AutoCloseable {
  /** The timeout when none is given: 5 minutes. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(5);

  /**
   * The longest timeout: 2<sup>31</sup> - 1 ms (about 24.8 days), the most that c10d and
   * Gloo keep as milliseconds.
   */
  public static final Duration MAX_TIMEOUT = Duration.ofMillis(Integer.MAX_VALUE);

  /**
   * The largest world size: 4096. Gloo connects every pair of ranks, which stops scaling long
   * before this; a larger {@code WORLD_SIZE} is refused at once as a typing mistake instead of
   * waiting for ranks that will never come.
   */
  public static final int MAX_WORLD_SIZE = 4096;

  private final Arena arena = Arena.ofShared();
  private final NativeProcessGroup group;
  private final int localRank;
  private final Duration timeout;

  private ProcessGroup(String masterAddr, int masterPort, int rank, int worldSize, int localRank, Duration timeout) {
    this.localRank = localRank;
    this.timeout = timeout;
    try {
      this.group = NativeProcessGroup.create(arena, masterAddr, masterPort, rank, worldSize, timeout.toMillis());
    } catch (RuntimeException e) {
      arena.close();
      throw e;
    }
  }

  /**
   * Joins a group; blocks until all {@code worldSize} ranks have joined.
   *
   * @param masterAddr where rank 0 runs (rank 0 itself listens on every interface)
   * @param masterPort the store's port on rank 0
   * @param timeout bounds the joining (all of it, whatever the world size) and every collective;
   *     1 ms to {@link #MAX_TIMEOUT}
   * @throws IllegalArgumentException when {@code worldSize} is above {@link #MAX_WORLD_SIZE},
   *     or another argument is out of range
   * @throws dev.sekit.SekitException (code DISTRIBUTED) when the group cannot be formed in time,
   *     or the ranks were started with different world sizes
   */
  public static ProcessGroup create(String masterAddr, int masterPort, int rank, int worldSize, Duration timeout) {
    return create(masterAddr, masterPort, rank, worldSize, rank, timeout);
  }

  private static ProcessGroup create(String masterAddr, int masterPort, int rank, int worldSize, int localRank,
      Duration timeout) {
    Objects.requireNonNull(masterAddr, "masterAddr");
    Objects.requireNonNull(timeout, "timeout");
    if (masterAddr.isBlank()) {
      throw new IllegalArgumentException("masterAddr must be a host name or address, got '" + masterAddr + "'");
    }
    if (masterPort < 1 || masterPort > 65535) {
      throw new IllegalArgumentException("masterPort must be in [1, 65535], got " + masterPort);
    }
    if (worldSize > MAX_WORLD_SIZE) {
      throw new IllegalArgumentException("worldSize (WORLD_SIZE) must be at most " + MAX_WORLD_SIZE + ", got "
          + worldSize + ": check the number of processes the launcher was given");
    }
    if (worldSize < 1 || rank < 0 || rank >= worldSize) {
      throw new IllegalArgumentException("need 0 <= rank < worldSize, got rank " + rank + " of " + worldSize);
    }
    if (timeout.compareTo(Duration.ofMillis(1)) < 0 || timeout.compareTo(MAX_TIMEOUT) > 0) {
      throw new IllegalArgumentException("timeout must be between 1 ms and " + MAX_TIMEOUT.toMillis()
          + " ms (about 24.8 days), got " + timeout + "; pass a finite timeout such as Duration.ofMinutes(30)");
    }
    if (localRank < 0) {
      throw new IllegalArgumentException("localRank must be >= 0, got " + localRank);
    }
    return new ProcessGroup(masterAddr, masterPort, rank, worldSize, localRank, timeout);
  }

  /** {@link #fromEnvironment(Duration)} with {@link #DEFAULT_TIMEOUT}. */
  public static ProcessGroup fromEnvironment() {
    return fromEnvironment(DEFAULT_TIMEOUT);
  }

  /**
   * Joins the group that the environment describes as {@code torchrun} sets it:
   * {@code MASTER_ADDR}, {@code MASTER_PORT}, {@code RANK}, {@code WORLD_SIZE} and
   * {@code LOCAL_RANK} (optional; the rank on this machine, default {@code RANK}).
   *
   * @throws IllegalStateException naming a variable that is missing or not a number
   */
  public static ProcessGroup fromEnvironment(Duration timeout) {
    return fromEnvironment(System.getenv(), timeout);
  }

  /** As {@link #fromEnvironment(Duration)}, from the variables in {@code env}. */
  public static ProcessGroup fromEnvironment(Map<String, String> env, Duration timeout) {
    Objects.requireNonNull(env, "env");
    String addr = variable(env, "MASTER_ADDR");
    int port = number(env, "MASTER_PORT");
    int rank = number(env, "RANK");
    int world = number(env, "WORLD_SIZE");
    int local = env.containsKey("LOCAL_RANK") ? number(env, "LOCAL_RANK") : rank;
    return create(addr, port, rank, world, local, timeout);
  }

  /** Whether {@code WORLD_SIZE} is set: this process was started by a launcher. */
  public static boolean launched() {
    return System.getenv("WORLD_SIZE") != null;
  }

  private static String variable(Map<String, String> env, String name) {
    String v = env.get(name);
    if (v == null || v.isBlank()) {
      throw new IllegalStateException("the environment variable " + name + " is not set (a launcher such as "
          + "torchrun or sekit train --nproc-per-node sets MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK)");
    }
    return v.trim();
  }

  private static int number(Map<String, String> env, String name) {
    String v = variable(env, name);
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new IllegalStateException("the environment variable " + name + " must be an integer, got '" + v + "'");
    }
  }

  /** This process's rank, 0 .. worldSize - 1. */
  public int rank() {
    return group.rank();
  }

  /** The number of processes in the group. */
  public int worldSize() {
    return group.worldSize();
  }

  /** The rank among the processes on this machine ({@code LOCAL_RANK}). */
  public int localRank() {
    return localRank;
  }

  /** The bound on joining and on every collective. */
  public Duration timeout() {
    return timeout;
  }

  /** Reduces {@code t} over all ranks, in place: every rank ends with the same values. */
  public void allReduce(Tensor t, ReduceOp op) {
    Objects.requireNonNull(t, "t");
    Objects.requireNonNull(op, "op");
    group.allReduce(Bridge.of(t), NativeProcessGroup.reduceCode(op.name()));
  }

  /** Sums {@code values} over all ranks (for metrics: losses, counts). */
  public double[] allReduce(double[] values, ReduceOp op) {
    Objects.requireNonNull(values, "values");
    if (values.length == 0) {
      return new double[0];
    }
    try (Arena a = Arena.ofConfined()) {
      Tensor t = Tensor.copyOf(a, values, values.length);
      allReduce(t, op);
      return t.toDoubleArray();
    }
  }

  /** Sets {@code t} to rank {@code root}'s values, in place. */
  public void broadcast(Tensor t, int root) {
    Objects.requireNonNull(t, "t");
    if (root < 0 || root >= worldSize()) {
      throw new IllegalArgumentException("root must be in [0, " + worldSize() + "), got " + root);
    }
    group.broadcast(Bridge.of(t), root);
  }

  /** Returns when every rank has called it. */
  public void barrier() {
    group.barrier();
  }

  /** Every rank's {@code t}, stacked: {@code [worldSize, *t.shape]}, row r from rank r; owned by {@code arena}. */
  public Tensor allGather(Arena arena, Tensor t) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(t, "t");
    return Bridge.tensor(group.allGather(arena, Bridge.of(t)));
  }

  NativeProcessGroup nativeGroup() {
    return group;
  }

  /** Leaves the group (idempotent). Other ranks' later collectives then fail. */
  @Override
  public void close() {
    if (arena.scope().isAlive()) {
      group.close();
      arena.close();
    }
  }

  @Override
  public String toString() {
    return "ProcessGroup(gloo, rank " + rank() + " of " + worldSize() + ")";
  }

}

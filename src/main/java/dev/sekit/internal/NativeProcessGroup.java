package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One native process group ({@code sk_process_group*}: c10d's Gloo group and its TCPStore):
 * the door of {@link dev.sekit.dist.ProcessGroup}. Collectives must run in the same order on
 * every rank, so one thread at a time may use it (its {@link Guard}).
 */
public final class NativeProcessGroup {
  private final Owner.Handle handle;
  private final MemorySegment segment;
  private final Guard[] guards = {new Guard("this process group")};
  private final int rank;
  private final int worldSize;

  private NativeProcessGroup(Arena arena, Owner.Handle handle) {
    this.handle = handle;
    this.segment = MemorySegment.ofAddress(handle.address).reinterpret(arena, null);
    this.rank = sekit_h.sk_process_group_rank(segment);
    this.worldSize = sekit_h.sk_process_group_world_size(segment);
  }

  /** Joins the group (blocks until every rank has joined, or the timeout). */
  public static NativeProcessGroup create(Arena arena, String masterAddr, int masterPort, int rank, int worldSize,
      long timeoutMillis) {
    Owner owner = Owner.of(arena);
    try (Arena tmp = Arena.ofConfined(); Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_process_group_new(tmp.allocateFrom(masterAddr), masterPort, rank, worldSize,
          timeoutMillis, out));
      Owner.Handle h = owner.adopt(out.get(ADDRESS, 0).address(), Owner.Kind.PROCESS_GROUP);
      return new NativeProcessGroup(arena, h);
    }
  }

  public int rank() {
    return rank;
  }

  public int worldSize() {
    return worldSize;
  }

  MemorySegment enter() {
    if (!segment.scope().isAlive() || handle.released()) {
      throw new IllegalStateException("this process group was closed");
    }
    Guard.enter(guards);
    if (handle.released()) { // closed by another thread between the check above and the guard
      Guard.exit(guards);
      throw new IllegalStateException("this process group was closed");
    }
    return segment;
  }

  void exit() {
    Guard.exit(guards);
  }

  /**
   * Leaves the group now; refused ("in use by another thread") while a collective of another
   * thread runs on it, so it is never freed under a call.
   */
  public void close() {
    if (!segment.scope().isAlive() || handle.released()) {
      return;
    }
    Guard.enter(guards);
    try {
      handle.release();
    } finally {
      Guard.exit(guards);
    }
  }

  public void allReduce(NativeTensor t, int op) {
    MemorySegment g = enter();
    try {
      MemorySegment x = t.enter();
      try {
        Calls.check(sekit_h.sk_all_reduce(g, x, op));
      } finally {
        t.exit();
      }
    } finally {
      exit();
    }
  }

  public void broadcast(NativeTensor t, int root) {
    MemorySegment g = enter();
    try {
      MemorySegment x = t.enter();
      try {
        Calls.check(sekit_h.sk_broadcast(g, x, root));
      } finally {
        t.exit();
      }
    } finally {
      exit();
    }
  }

  public void barrier() {
    MemorySegment g = enter();
    try {
      Calls.check(sekit_h.sk_barrier(g));
    } finally {
      exit();
    }
  }

  /** [worldSize, *t.shape], owned by {@code owner}. */
  public NativeTensor allGather(Arena owner, NativeTensor t) {
    Owner.of(owner);
    MemorySegment g = enter();
    try {
      MemorySegment x = t.enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.pointer();
        Calls.check(sekit_h.sk_all_gather(g, x, out));
        return NativeTensor.adopt(out.get(ADDRESS, 0), owner, NativeTensor.Origin.FRESH);
      } finally {
        t.exit();
      }
    } finally {
      exit();
    }
  }

  /**
   * Sets every BatchNorm2d of {@code module} to normalise with the batch statistics of all
   * ranks of {@code group} in training, or, with {@code group} null, with this rank's own.
   * Returns how many layers were set.
   */
  public static int syncBatchNorm(NativeModule module, NativeProcessGroup group) {
    MemorySegment g = group == null ? MemorySegment.NULL : group.enter();
    try {
      MemorySegment m = module.enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.oneInt();
        Calls.check(sekit_h.sk_sync_batchnorm(m, g, out));
        return out.get(JAVA_INT, 0);
      } finally {
        module.exit();
      }
    } finally {
      if (group != null) {
        group.exit();
      }
    }
  }

  /** Reduction codes of the header, by name (SUM, AVG, MIN, MAX). */
  public static int reduceCode(String name) {
    return switch (name) {
      case "SUM" -> sekit_h.SK_REDUCE_SUM();
      case "AVG" -> sekit_h.SK_REDUCE_AVG();
      case "MIN" -> sekit_h.SK_REDUCE_MIN();
      case "MAX" -> sekit_h.SK_REDUCE_MAX();
      default -> throw new IllegalArgumentException("unknown reduction " + name);
    };
  }
}

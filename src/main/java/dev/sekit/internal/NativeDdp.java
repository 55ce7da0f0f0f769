package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One native DistributedDataParallel ({@code sk_ddp*}): the gradient hooks and buckets of a
 * module over a process group; the door of {@link dev.sekit.dist.DistributedDataParallel}.
 * Its guards are the module's and the group's: it writes the module's parameters and runs
 * collectives.
 */
public final class NativeDdp {
  private final Owner.Handle handle;
  private final MemorySegment segment;
  private final NativeModule module;
  private final NativeProcessGroup group;

  private NativeDdp(Arena arena, Owner.Handle handle, NativeModule module, NativeProcessGroup group) {
    this.handle = handle;
    this.segment = MemorySegment.ofAddress(handle.address).reinterpret(arena, null);
    this.module = module;
    this.group = group;
  }

  /** Broadcasts rank 0's parameters and buffers and hooks the gradients. */
  public static NativeDdp create(Arena arena, NativeProcessGroup group, NativeModule module, long bucketBytes) {
    Owner owner = Owner.of(arena);
    MemorySegment g = group.enter();
    try {
      MemorySegment m = module.enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.pointer();
        Calls.check(sekit_h.sk_ddp_new(g, m, bucketBytes, out));
        Owner.Handle h = owner.adopt(out.get(ADDRESS, 0).address(), Owner.Kind.DDP);
        return new NativeDdp(arena, h, module, group);
      } finally {
        module.exit();
      }
    } finally {
      group.exit();
    }
  }

  private MemorySegment enter() {
    if (!segment.scope().isAlive() || handle.released()) {
      throw new IllegalStateException("this DistributedDataParallel was closed");
    }
    group.enter();
    try {
      module.enter();
    } catch (RuntimeException e) {
      group.exit();
      throw e;
    }
    if (handle.released()) { // closed by another thread between the check above and the guards
      exit();
      throw new IllegalStateException("this DistributedDataParallel was closed");
    }
    return segment;
  }

  private void exit() {
    module.exit();
    group.exit();
  }

  /** Before a forward: clears a failed backward's state; syncs buffers from rank 0 when asked. */
  public void prepare(boolean broadcastBuffers) {
    MemorySegment d = enter();
    try {
      Calls.check(sekit_h.sk_ddp_prepare(d, Abi.bool(broadcastBuffers)));
    } finally {
      exit();
    }
  }

  /** Sets the module's parameters and buffers to rank 0's. */
  public void broadcastState() {
    MemorySegment d = enter();
    try {
      Calls.check(sekit_h.sk_ddp_broadcast_state(d));
    } finally {
      exit();
    }
  }

  /** {buckets, reductions} and the seconds waited for buckets at the end of backward. */
  public double[] stats() {
    MemorySegment d = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment b = f.oneLong();
      MemorySegment r = f.oneLong();
      MemorySegment w = f.oneDouble();
      Calls.check(sekit_h.sk_ddp_stats(d, b, r, w));
      return new double[] {b.get(JAVA_LONG, 0), r.get(JAVA_LONG, 0), w.get(JAVA_DOUBLE, 0)};
    } finally {
      exit();
    }
  }

  /**
   * Detaches the hooks now; refused ("in use by another thread") while another thread runs
   * the module or a collective, so hooks never change under a backward.
   */
  public void close() {
    if (!segment.scope().isAlive() || handle.released()) {
      return;
    }
    enter();
    try {
      handle.release();
    } finally {
      exit();
    }
  }
}

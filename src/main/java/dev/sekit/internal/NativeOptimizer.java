package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One native optimizer ({@code sk_optimizer*}) over a module's parameters: the door of
 * {@link dev.sekit.train.Optimizer}. Its guards cover the module's, since a step writes the
 * module's parameters.
 */
public final class NativeOptimizer {
  private final MemorySegment segment;
  private final Guard[] guards;
  private final Map<String, NativeTensor> state;

  private NativeOptimizer(Arena arena, Owner.Handle handle, Guard[] guards) {
    this.segment = MemorySegment.ofAddress(handle.address).reinterpret(arena, null);
    this.guards = guards;
    Map<String, NativeTensor> s = new LinkedHashMap<>();
    NativeTensor.Origin origin = new NativeTensor.Origin(List.of(), null, guards, true);
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment count = f.oneLong();
      Calls.check(sekit_h.sk_optimizer_state_count(segment, count));
      MemorySegment key = f.pointer();
      MemorySegment out = f.pointer();
      for (long i = 0; i < count.get(JAVA_LONG, 0); i++) {
        Calls.check(sekit_h.sk_optimizer_state_entry(segment, i, key, out));
        NativeTensor t = NativeTensor.adopt(out.get(ADDRESS, 0), arena, origin);
        s.put(Calls.string(key.get(ADDRESS, 0)), t);
      }
    }
    this.state = Collections.unmodifiableMap(s);
  }

  /** The native side reads n_groups entries of both arrays. */
  private static void checkGroups(double[] lrs, double[] weightDecays) {
    if (weightDecays.length != lrs.length) {
      throw new IllegalArgumentException("weightDecays has " + weightDecays.length + " entries but there are "
          + lrs.length + " groups");
    }
  }

  /**
   * torch.optim.SGD with parameter groups: {@code groupOf[i]} is the group of the module's
   * i-th parameter (state order), -1 for a frozen one; group g has {@code lrs[g]} and
   * {@code weightDecays[g]}.
   */
  public static NativeOptimizer sgd(Arena arena, NativeModule module, int[] groupOf, double[] lrs,
      double[] weightDecays, double momentum, double dampening, boolean nesterov) {
    return create(arena, module, groupOf, lrs, weightDecays, (m, g, l, w, out) -> sekit_h.sk_sgd_new_grouped(m, g,
        groupOf.length, l, w, lrs.length, momentum, dampening, Abi.bool(nesterov), out));
  }

  /** torch.optim.AdamW with parameter groups, as {@link #sgd(Arena, NativeModule, int[], double[], double[], double, double, boolean)}. */
  public static NativeOptimizer adamW(Arena arena, NativeModule module, int[] groupOf, double[] lrs,
      double[] weightDecays, double beta1, double beta2, double eps) {
    return create(arena, module, groupOf, lrs, weightDecays, (m, g, l, w, out) -> sekit_h.sk_adamw_new_grouped(m, g,
        groupOf.length, l, w, lrs.length, beta1, beta2, eps, out));
  }

  /** A native constructor given the module and the groups as native arrays. */
  @FunctionalInterface
  private interface Constructor {
    MemorySegment call(MemorySegment module, MemorySegment groupOf, MemorySegment lrs, MemorySegment weightDecays,
        MemorySegment out);
  }

  private static NativeOptimizer create(Arena arena, NativeModule module, int[] groupOf, double[] lrs,
      double[] weightDecays, Constructor ctor) {
    checkGroups(lrs, weightDecays);
    Owner owner = Owner.of(arena);
    Owner.Handle h;
    MemorySegment m = module.enter();
    try (Arena tmp = Arena.ofConfined(); Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(ctor.call(m, tmp.allocateFrom(JAVA_INT, groupOf), tmp.allocateFrom(JAVA_DOUBLE, lrs),
          tmp.allocateFrom(JAVA_DOUBLE, weightDecays), out));
      h = owner.adopt(out.get(ADDRESS, 0).address(), Owner.Kind.OPTIMIZER);
    } finally {
      module.exit();
    }
    try {
      return new NativeOptimizer(arena, h, Guard.with(new Guard("this optimizer"), module.guards()));
    } catch (RuntimeException e) {
      h.release();
      throw e;
    }
  }

  private MemorySegment enter() {
    if (!segment.scope().isAlive()) {
      throw new IllegalStateException("this optimizer was closed: the arena that owns it has been closed");
    }
    Guard.enter(guards);
    return segment;
  }

  private void exit() {
    Guard.exit(guards);
  }

  public void step() {
    MemorySegment o = enter();
    try {
      Calls.check(sekit_h.sk_optimizer_step(o));
    } finally {
      exit();
    }
  }

  public void zeroGrad() {
    MemorySegment o = enter();
    try {
      Calls.check(sekit_h.sk_optimizer_zero_grad(o));
    } finally {
      exit();
    }
  }

  public double learningRate() {
    MemorySegment o = enter();
    try {
      return sekit_h.sk_optimizer_lr(o);
    } finally {
      exit();
    }
  }

  public int groupCount() {
    MemorySegment o = enter();
    try {
      return (int) sekit_h.sk_optimizer_group_count(o);
    } finally {
      exit();
    }
  }

  public double groupLearningRate(int group) {
    MemorySegment o = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.oneDouble();
      Calls.check(sekit_h.sk_optimizer_group_lr(o, group, out));
      return out.get(JAVA_DOUBLE, 0);
    } finally {
      exit();
    }
  }

  public void setGroupLearningRate(int group, double lr) {
    MemorySegment o = enter();
    try {
      Calls.check(sekit_h.sk_optimizer_set_group_lr(o, group, lr));
    } finally {
      exit();
    }
  }

  /** The live state tensors by name. */
  public Map<String, NativeTensor> state() {
    enter();
    exit();
    return state;
  }
}

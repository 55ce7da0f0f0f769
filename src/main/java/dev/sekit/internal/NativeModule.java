package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.internal.ffi.sekit_h;
import dev.sekit.nn.Activation;
import dev.sekit.nn.Attention;
import dev.sekit.nn.AttentionConfig;
import dev.sekit.nn.ResNet;
import dev.sekit.nn.ResidualBlock;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One native module ({@code sk_module*}) and every call on it: the door through which
 * {@link dev.sekit.nn.Module} reaches libsekit. Its state (parameters and buffers) is read
 * once, as tensors that alias the module's; its {@link Guard}s cover the module and, for a
 * Sequential, every child, so that no two threads run on shared state at once.
 */
public final class NativeModule {
  private final Owner.Handle handle;
  private final MemorySegment segment;
  private final Arena arena;
  private final String name;
  private final Guard[] guards;
  private final Map<String, NativeTensor> state;
  private final Map<String, NativeTensor> parameters;

  private NativeModule(Owner.Handle handle, MemorySegment segment, Arena arena, String name, Guard[] guards) {
    this.handle = handle;
    this.segment = segment;
    this.arena = arena;
    this.name = name;
    this.guards = guards;
    Map<String, NativeTensor> all = new LinkedHashMap<>();
    Map<String, NativeTensor> params = new LinkedHashMap<>();
    NativeTensor.Origin origin = new NativeTensor.Origin(List.of(), null, guards, true);
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment count = f.oneLong();
      Calls.check(sekit_h.sk_module_state_count(segment, count));
      MemorySegment key = f.pointer();
      MemorySegment isParam = f.oneInt();
      MemorySegment out = f.pointer();
      for (long i = 0; i < count.get(JAVA_LONG, 0); i++) {
        Calls.check(sekit_h.sk_module_state_entry(segment, i, key, isParam, out));
        NativeTensor t = NativeTensor.adopt(out.get(ADDRESS, 0), arena, origin);
        String k = Calls.string(key.get(ADDRESS, 0));
        all.put(k, t);
        if (isParam.get(JAVA_INT, 0) == 1) {
          params.put(k, t);
        }
      }
    }
    this.state = Collections.unmodifiableMap(all);
    this.parameters = Collections.unmodifiableMap(params);
  }

  /**
   * Makes a module in {@code arena} with {@code ctor}, which gets the out-pointer and returns
   * the library's error; {@code name} names it in messages.
   */
  private static NativeModule create(Arena arena, String name, Constructor ctor) {
    Owner owner = Owner.of(arena);
    Owner.Handle h;
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(ctor.call(f, out));
      h = owner.adopt(out.get(ADDRESS, 0).address(), Owner.Kind.MODULE);
    }
    return finish(h, arena, name, new Guard[0]);
  }

  /** A native constructor: arguments from the frame, the new module into {@code out}. */
  @FunctionalInterface
  private interface Constructor {
    MemorySegment call(Scratch.Frame f, MemorySegment out);
  }

  private static NativeModule finish(Owner.Handle h, Arena arena, String name, Guard[] inherited) {
    try {
      MemorySegment seg = MemorySegment.ofAddress(h.address).reinterpret(arena, null);
      return new NativeModule(h, seg, arena, name, Guard.with(new Guard("this module (" + name + ")"), inherited));
    } catch (RuntimeException e) {
      h.release();
      throw e;
    }
  }

  // ------------------------------------------------------------------ constructors

  public static NativeModule squeezeExcitation(Arena arena, int channels, double rdRatio, int rdChannels,
      int rdDivisor, boolean bias, Activation act, Activation gate, boolean addMaxPool, boolean batchNorm) {
    return create(arena, "SqueezeExcitation", (f, o) -> sekit_h.sk_se_new(channels, rdRatio, rdChannels,
        rdDivisor, Abi.bool(bias), Abi.code(act), Abi.code(gate), Abi.bool(addMaxPool), Abi.bool(batchNorm),
        o));
  }

  public static NativeModule effectiveSqueezeExcitation(Arena arena, int channels, Activation gate, boolean addMaxPool) {
    return create(arena, "EffectiveSqueezeExcitation", (f, o) -> sekit_h.sk_ese_new(channels, Abi.code(gate), Abi.bool(addMaxPool), o));
  }

  public static NativeModule convNormAct(Arena arena, int in, int out, int kernel, int stride, boolean separable) {
    return create(arena, "ConvNormAct", (f, o) -> sekit_h.sk_conv_norm_act_new(in, out, kernel, stride, Abi.bool(separable), o));
  }

  public static NativeModule osaBlock(Arena arena, int in, int mid, int out, int layers, boolean residual,
      boolean depthwise, Attention attention) {
    return create(arena, "OsaBlock", (f, o) -> sekit_h.sk_osa_block_new(in, mid, out, layers,
        Abi.bool(residual), Abi.bool(depthwise), Abi.code(attention), o));
  }

  public static NativeModule osaStage(Arena arena, int in, int mid, int out, int blocks, int layers,
      boolean downsample, boolean residual, boolean depthwise, Attention attention, boolean everyBlock) {
    return create(arena, "OsaStage", (f, o) -> sekit_h.sk_osa_stage_new(in, mid, out, blocks, layers,
        Abi.bool(downsample), Abi.bool(residual), Abi.bool(depthwise), Abi.code(attention), Abi.bool(everyBlock),
        o));
  }

  public static NativeModule vovnet(Arena arena, int[] stem, int[] conv, int[] out, int[] blocks, int layers,
      boolean residual, boolean depthwise, Attention attention, boolean everyBlock, int inChannels, int classes,
      double dropRate) {
    return create(arena, "VoVNet", (f, o) -> sekit_h.sk_vovnet_new(f.longs(stem), f.longs(conv), f.longs(out),
        f.longs(blocks), layers, Abi.bool(residual), Abi.bool(depthwise), Abi.code(attention), Abi.bool(everyBlock),
        inChannels, classes, dropRate, o));
  }

  public static NativeModule residualBlock(Arena arena, ResidualBlock.Kind kind, int in, int planes, int stride,
      int cardinality, int baseWidth, ResidualBlock.Shortcut shortcut, AttentionConfig a) {
    return create(arena, "ResidualBlock", (f, o) -> sekit_h.sk_resnet_block_new(Abi.code(kind), in, planes, stride,
        cardinality, baseWidth, Abi.code(shortcut), Abi.code(a.kind()), a.rdRatio(), a.rdDivisor(), a.rdChannels(),
        a.reduction(), Abi.bool(a.bias()), Abi.code(a.activation()), Abi.code(a.gate()), o));
  }

  public static NativeModule resnet(Arena arena, ResidualBlock.Kind block, int[] layers, int[] channels,
      int cardinality, int baseWidth, ResNet.Stem stem, int stemWidth, boolean avgDown, AttentionConfig a,
      int inChannels, int classes, double dropRate) {
    return create(arena, "ResNet", (f, o) -> sekit_h.sk_resnet_new(Abi.code(block), f.longs(layers),
        f.longs(channels), cardinality, baseWidth, Abi.code(stem), stemWidth, Abi.bool(avgDown), Abi.code(a.kind()),
        a.rdRatio(), a.rdDivisor(), a.reduction(), Abi.bool(a.bias()), Abi.code(a.activation()), Abi.code(a.gate()),
        inChannels, classes, dropRate, o));
  }

  public static NativeModule maxPool2d(Arena arena, int kernel, int stride, boolean ceil) {
    return create(arena, "MaxPool2d", (f, o) -> sekit_h.sk_maxpool2d_new(kernel, stride, Abi.bool(ceil), o));
  }

  public static NativeModule classifierHead(Arena arena, int in, int classes, double dropRate) {
    return create(arena, "ClassifierHead", (f, o) -> sekit_h.sk_classifier_head_new(in, classes, dropRate, o));
  }

  /** A Sequential of {@code children} (shared, not moved); its guards cover theirs. */
  public static NativeModule sequential(Arena arena, List<NativeModule> children) {
    Guard[][] inherited = children.stream().map(c -> c.guards).toArray(Guard[][]::new);
    Owner owner = Owner.of(arena);
    Owner.Handle h;
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_sequential_new(out));
      h = owner.adopt(out.get(ADDRESS, 0).address(), Owner.Kind.MODULE);
    }
    try {
      MemorySegment seq = MemorySegment.ofAddress(h.address);
      for (NativeModule c : children) {
        MemorySegment ch = c.enter();
        try {
          Calls.check(sekit_h.sk_sequential_append(seq, ch));
        } finally {
          c.exit();
        }
      }
    } catch (RuntimeException e) {
      h.release();
      throw e;
    }
    return finish(h, arena, "Sequential", Guard.union(inherited));
  }

  /**
   * This module prepared for inference ({@code sk_module_prepare_inference}), in
   * {@code arena}. The prepared module shares this one (it follows its weights and may run
   * its forward), so its guards cover this module's too.
   */
  public NativeModule prepareForInference(Arena arena) {
    MemorySegment m = enter();
    try {
      Owner owner = Owner.of(arena);
      Owner.Handle h;
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.pointer();
        Calls.check(sekit_h.sk_module_prepare_inference(m, out));
        h = owner.adopt(out.get(ADDRESS, 0).address(), Owner.Kind.MODULE);
      }
      return finish(h, arena, "prepared " + name, guards);
    } finally {
      exit();
    }
  }

  /** 1: a prepared module that runs its plan; 0: one that runs its source; -1: not prepared. */
  public int inferencePlan() {
    MemorySegment m = enter();
    try {
      return sekit_h.sk_module_inference_plan(m);
    } finally {
      exit();
    }
  }

  // ------------------------------------------------------------------ the checks

  MemorySegment enter() {
    if (!segment.scope().isAlive()) {
      throw new IllegalStateException("this module was closed: the arena that owns it has been closed");
    }
    if (!segment.isAccessibleBy(Thread.currentThread())) {
      throw new WrongThreadException("this module belongs to a confined arena of another thread; use it on "
          + "that thread, or build it in a shared arena (Arena.ofShared()) to hand it between threads");
    }
    Guard.enter(guards);
    return segment;
  }

  void exit() {
    Guard.exit(guards);
  }

  Guard[] guards() {
    return guards;
  }

  public boolean isAlive() {
    return segment.scope().isAlive() && !handle.released();
  }

  public Arena arena() {
    return arena;
  }

  // ------------------------------------------------------------------ calls

  /** The module's output for {@code x}, owned by {@code owner}. */
  public NativeTensor forward(Arena owner, NativeTensor x, boolean recordGrad) {
    MemorySegment xh = x.enter();
    try {
      requireOpen(owner);
      MemorySegment m = enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.pointer();
        Calls.check(sekit_h.sk_module_forward(m, xh, Abi.bool(recordGrad), out));
        NativeTensor.Origin o = NativeTensor.Origin.of(x);
        return NativeTensor.adopt(out.get(ADDRESS, 0), owner, recordGrad ? o.withGuards(guards) : o);
      } finally {
        exit();
      }
    } finally {
      x.exit();
    }
  }

  /** A VoVNet's four stage maps for {@code x}, owned by {@code owner}. */
  public List<NativeTensor> forwardStages(Arena owner, NativeTensor x, boolean recordGrad) {
    return stages(owner, x, recordGrad, sekit_h::sk_vovnet_forward_stages);
  }

  /** A ResNet's four stage maps (layer1..layer4) for {@code x}, owned by {@code owner}. */
  public List<NativeTensor> resnetForwardStages(Arena owner, NativeTensor x, boolean recordGrad) {
    return stages(owner, x, recordGrad, sekit_h::sk_resnet_forward_stages);
  }

  /** A native {@code sk_*_forward_stages}. */
  @FunctionalInterface
  private interface StagesCall {
    MemorySegment call(MemorySegment m, MemorySegment x, int recordGrad, MemorySegment out);
  }

  private List<NativeTensor> stages(Arena owner, NativeTensor x, boolean recordGrad, StagesCall call) {
    MemorySegment xh = x.enter();
    try {
      requireOpen(owner);
      MemorySegment m = enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.pointers(4);
        Calls.check(call.call(m, xh, Abi.bool(recordGrad), out));
        NativeTensor.Origin o = NativeTensor.Origin.of(x);
        return List.copyOf(NativeTensor.adoptAll(out, 4, owner, recordGrad ? o.withGuards(guards) : o));
      } finally {
        exit();
      }
    } finally {
      x.exit();
    }
  }

  private static void requireOpen(Arena owner) {
    if (!owner.scope().isAlive()) {
      throw new IllegalStateException("the arena for the result is already closed");
    }
  }

  public void setTraining(boolean on) {
    MemorySegment m = enter();
    try {
      Calls.check(sekit_h.sk_module_set_training(m, Abi.bool(on)));
    } finally {
      exit();
    }
  }

  public boolean isTraining() {
    MemorySegment m = enter();
    try {
      return sekit_h.sk_module_is_training(m) == 1;
    } finally {
      exit();
    }
  }

  /** Converts and moves every floating parameter and buffer in place. */
  public void to(DType dtype, Device device) {
    MemorySegment m = enter();
    try {
      Calls.check(sekit_h.sk_module_to(m, Abi.code(dtype), Abi.deviceType(device), device.index()));
    } finally {
      exit();
    }
  }

  public void to(MemoryFormat format) {
    MemorySegment m = enter();
    try {
      Calls.check(sekit_h.sk_module_to_format(m, Abi.code(format)));
    } finally {
      exit();
    }
  }

  public void setFused(boolean on) {
    MemorySegment m = enter();
    try {
      Calls.check(sekit_h.sk_module_set_fused(m, Abi.bool(on)));
    } finally {
      exit();
    }
  }

  /** Scales the gradients to a global L2 norm of at most {@code maxNorm}; the norm before. */
  public double clipGradNorm(double maxNorm) {
    MemorySegment m = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.oneDouble();
      Calls.check(sekit_h.sk_clip_grad_norm(m, maxNorm, out));
      return out.get(JAVA_DOUBLE, 0);
    } finally {
      exit();
    }
  }

  /** Drops every parameter's gradient. */
  public void zeroGrad() {
    enter();
    try {
      for (NativeTensor p : parameters.values()) {
        p.clearGrad();
      }
    } finally {
      exit();
    }
  }

  /** Parameters and buffers in PyTorch's order, by timm name (aliases of the module's). */
  public Map<String, NativeTensor> state() {
    return state;
  }

  public Map<String, NativeTensor> parameters() {
    return parameters;
  }

  @Override
  public String toString() {
    return name;
  }
}

package dev.sekit.train;

import static dev.sekit.internal.Native.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.Tensor;
import dev.sekit.internal.ModuleAccess;
import dev.sekit.internal.Native;
import dev.sekit.internal.TensorAccess;
import dev.sekit.internal.ffi.sekit_h;
import dev.sekit.nn.Module;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * An optimizer over a module's parameters, running in libsekit with the same updates as
 * {@code torch.optim.SGD} and {@code torch.optim.AdamW}. Its state (momentum buffers,
 * moments, step count) is readable and restorable through {@link #stateDict()} for
 * checkpoints. Owned by an {@link Arena}, like modules.
 */
public final class Optimizer {
  private final MemorySegment handle;
  private final Map<String, Tensor> state;

  private Optimizer(MemorySegment handle, Arena arena) {
    this.handle = handle;
    Map<String, Tensor> s = new LinkedHashMap<>();
    TensorAccess ta = TensorAccess.get();
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment count = scratch.allocate(JAVA_LONG);
      check(sekit_h.sk_optimizer_state_count(handle, count));
      MemorySegment name = scratch.allocate(ADDRESS);
      MemorySegment out = scratch.allocate(ADDRESS);
      for (long i = 0; i < count.get(JAVA_LONG, 0); i++) {
        check(sekit_h.sk_optimizer_state_entry(handle, i, name, out));
        Tensor t = ta.adopt(out.get(ADDRESS, 0), arena, List.of());
        s.put(name.get(ADDRESS, 0).reinterpret(Long.MAX_VALUE).getString(0), t);
      }
    }
    this.state = Collections.unmodifiableMap(s);
  }

  private static Optimizer create(Arena arena, java.util.function.Function<MemorySegment, MemorySegment> ctor) {
    Objects.requireNonNull(arena, "arena");
    Native.requireOpen(arena, "the arena");
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(ctor.apply(out));
      return new Optimizer(Native.ownOptimizer(out.get(ADDRESS, 0), arena), arena);
    }
  }

  /** SGD with timm/PyTorch semantics; defaults: momentum 0.9, no dampening, Nesterov off, no decay. */
  public static SgdBuilder sgd(Module module, double lr) {
    return new SgdBuilder(module, lr);
  }

  /** AdamW; defaults as torch.optim.AdamW: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
  public static AdamWBuilder adamW(Module module, double lr) {
    return new AdamWBuilder(module, lr);
  }

  private MemorySegment handle() {
    Native.checkAlive(handle, "this optimizer");
    return handle;
  }

  /** One update from the parameters' current gradients. */
  public void step() {
    check(sekit_h.sk_optimizer_step(handle()));
  }

  /** Drops every parameter's gradient (set_to_none, as PyTorch's default). */
  public void zeroGrad() {
    check(sekit_h.sk_optimizer_zero_grad(handle()));
  }

  public double learningRate() {
    return sekit_h.sk_optimizer_lr(handle());
  }

  public void setLearningRate(double lr) {
    check(sekit_h.sk_optimizer_set_lr(handle(), lr));
  }

  /** Number of steps taken. */
  public long steps() {
    return state.get("step").toLongArray()[0];
  }

  /** The live state tensors by name ("&lt;param&gt;.momentum_buffer", ".exp_avg", ".exp_avg_sq", "step"). */
  public Map<String, Tensor> stateDict() {
    handle();
    return state;
  }

  /** Restores state saved from an optimizer of the same kind over the same module (strict). */
  public void loadStateDict(Map<String, Tensor> saved) {
    Objects.requireNonNull(saved, "saved");
    if (!saved.keySet().equals(state.keySet())) {
      throw new IllegalArgumentException("optimizer state does not fit: expected keys " + state.keySet()
          + ", got " + saved.keySet());
    }
    for (Map.Entry<String, Tensor> e : state.entrySet()) {
      Tensor src = saved.get(e.getKey());
      if (!Arrays.equals(src.shape(), e.getValue().shape())) {
        throw new IllegalArgumentException("optimizer state " + e.getKey() + ": expected shape "
            + Arrays.toString(e.getValue().shape()) + ", got " + Arrays.toString(src.shape()));
      }
    }
    state.forEach((k, t) -> t.copyFrom(saved.get(k)));
  }

  /** Options of SGD. */
  public static final class SgdBuilder {
    private final Module module;
    private final double lr;
    private double momentum = 0.9;
    private double dampening;
    private double weightDecay;
    private boolean nesterov;

    private SgdBuilder(Module module, double lr) {
      this.module = Objects.requireNonNull(module, "module");
      this.lr = lr;
    }

    public SgdBuilder momentum(double m) {
      this.momentum = m;
      return this;
    }

    public SgdBuilder dampening(double d) {
      this.dampening = d;
      return this;
    }

    public SgdBuilder weightDecay(double wd) {
      this.weightDecay = wd;
      return this;
    }

    public SgdBuilder nesterov(boolean on) {
      this.nesterov = on;
      return this;
    }

    /** Builds the optimizer in {@code arena}. */
    public Optimizer build(Arena arena) {
      MemorySegment m = ModuleAccess.get().handle(module);
      return create(arena, o -> sekit_h.sk_sgd_new(m, lr, momentum, dampening, weightDecay, nesterov ? 1 : 0, o));
    }
  }

  /** Options of AdamW. */
  public static final class AdamWBuilder {
    private final Module module;
    private final double lr;
    private double beta1 = 0.9;
    private double beta2 = 0.999;
    private double eps = 1e-8;
    private double weightDecay = 0.01;

    private AdamWBuilder(Module module, double lr) {
      this.module = Objects.requireNonNull(module, "module");
      this.lr = lr;
    }

    public AdamWBuilder betas(double b1, double b2) {
      this.beta1 = b1;
      this.beta2 = b2;
      return this;
    }

    public AdamWBuilder eps(double e) {
      this.eps = e;
      return this;
    }

    public AdamWBuilder weightDecay(double wd) {
      this.weightDecay = wd;
      return this;
    }

    public Optimizer build(Arena arena) {
      MemorySegment m = ModuleAccess.get().handle(module);
      return create(arena, o -> sekit_h.sk_adamw_new(m, lr, beta1, beta2, eps, weightDecay, o));
    }
  }
}

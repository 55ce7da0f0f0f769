package dev.sekit.train;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeOptimizer;
import dev.sekit.nn.Module;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * An optimizer over a module's parameters, running in libsekit with the same updates as
 * {@code torch.optim.SGD} and {@code torch.optim.AdamW}. Its state (momentum buffers,
 * moments, step count) is readable and restorable through {@link #stateDict()} for
 * checkpoints. Owned by an {@link Arena}, like modules.
 */
public final class Optimizer {
  private final NativeOptimizer n;
  private final Map<String, Tensor> state;

  private Optimizer(NativeOptimizer n) {
    this.n = n;
    Map<String, Tensor> s = new LinkedHashMap<>();
    n.state().forEach((k, t) -> s.put(k, Bridge.tensor(t)));
    this.state = Collections.unmodifiableMap(s);
  }

  private static Arena open(Arena arena) {
    Objects.requireNonNull(arena, "arena");
    if (!arena.scope().isAlive()) {
      throw new IllegalStateException("the arena is already closed");
    }
    return arena;
  }

  /** SGD with timm/PyTorch semantics; defaults: momentum 0.9, no dampening, Nesterov off, no decay. */
  public static SgdBuilder sgd(Module module, double lr) {
    return new SgdBuilder(module, lr);
  }

  /** AdamW; defaults as torch.optim.AdamW: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
  public static AdamWBuilder adamW(Module module, double lr) {
    return new AdamWBuilder(module, lr);
  }

  /** One update from the parameters' current gradients. */
  public void step() {
    n.step();
  }

  /** Drops every parameter's gradient (set_to_none, as PyTorch's default). */
  public void zeroGrad() {
    n.zeroGrad();
  }

  public double learningRate() {
    return n.learningRate();
  }

  public void setLearningRate(double lr) {
    n.setLearningRate(lr);
  }

  /** Number of steps taken. */
  public long steps() {
    return state.get("step").toLongArray()[0];
  }

  /** The live state tensors by name ("&lt;param&gt;.momentum_buffer", ".exp_avg", ".exp_avg_sq", "step"). */
  public Map<String, Tensor> stateDict() {
    n.state();
    return state;
  }

  /** Restores state saved from an optimizer of the same kind over the same module (strict). */
  public void loadStateDict(Map<String, Tensor> saved) {
    checkStateDict(saved);
    state.forEach((k, t) -> t.copyFrom(saved.get(k)));
  }

  /**
   * Checks that {@code saved} fits this optimizer, changing nothing: the same keys (so the
   * same kind of optimizer over the same parameters) and shapes.
   *
   * @throws IllegalArgumentException naming what does not fit
   */
  public void checkStateDict(Map<String, Tensor> saved) {
    Objects.requireNonNull(saved, "saved");
    if (!saved.keySet().equals(state.keySet())) {
      java.util.TreeSet<String> missing = new java.util.TreeSet<>(state.keySet());
      missing.removeAll(saved.keySet());
      java.util.TreeSet<String> unexpected = new java.util.TreeSet<>(saved.keySet());
      unexpected.removeAll(state.keySet());
      throw new IllegalArgumentException("optimizer state does not fit (a checkpoint of another kind of "
          + "optimizer, or of another model?): " + missing.size() + " key(s) missing " + sample(missing)
          + ", " + unexpected.size() + " unexpected " + sample(unexpected));
    }
    for (Map.Entry<String, Tensor> e : state.entrySet()) {
      Tensor src = Objects.requireNonNull(saved.get(e.getKey()), () -> "optimizer state value for " + e.getKey());
      if (!Arrays.equals(src.shape(), e.getValue().shape())) {
        throw new IllegalArgumentException("optimizer state " + e.getKey() + ": expected shape "
            + Arrays.toString(e.getValue().shape()) + ", got " + Arrays.toString(src.shape()));
      }
    }
  }

  private static String sample(java.util.SortedSet<String> keys) {
    return keys.stream().limit(3).toList() + (keys.size() > 3 ? " ..." : "");
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
      return new Optimizer(NativeOptimizer.sgd(open(arena), Bridge.of(module), lr, momentum, dampening, weightDecay,
          nesterov));
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
      return new Optimizer(NativeOptimizer.adamW(open(arena), Bridge.of(module), lr, beta1, beta2, eps, weightDecay));
    }
  }
}

package dev.sekit.train;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeOptimizer;
import dev.sekit.nn.Module;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * An optimizer over a module's parameters, running in libsekit with the same updates as
 * {@code torch.optim.SGD} and {@code torch.optim.AdamW}, with parameter groups
 * ({@link ParamGroups}: frozen parameters, a learning rate and weight decay per group). Its
 * state (momentum buffers, moments, step count) is readable and restorable through
 * {@link #stateDict()} for checkpoints. Owned by an {@link Arena}, like modules.
 *
 * <pre>{@code
 * Optimizer opt = Optimizer.sgd(model, 0.01).weightDecay(1e-4)
 *     .paramGroups(ParamGroups.builder().freeze("stem").backbone(0.1, "head").build())
 *     .build(arena);
 * }</pre>
 */
public final class Optimizer {
  private final NativeOptimizer n;
  private final Map<String, Tensor> state;
  private final ParamGroups groups;
  private final double[] lrScales; // per native group; group 0 (the default) is 1

  private Optimizer(NativeOptimizer n, ParamGroups groups) {
    this.n = n;
    this.groups = groups;
    this.lrScales = new double[groups.groups().size() + 1];
    lrScales[0] = 1;
    for (int g = 0; g < groups.groups().size(); g++) {
      lrScales[g + 1] = groups.groups().get(g).lrScale();
    }
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

  /** Drops the gradient of every parameter it updates (set_to_none, as PyTorch's default). */
  public void zeroGrad() {
    n.zeroGrad();
  }

  /** The learning rate of the default group (the optimizer's own). */
  public double learningRate() {
    return n.learningRate();
  }

  /**
   * Sets the optimizer's learning rate: the default group gets {@code lr}, every other group
   * {@code lr} times its {@link ParamGroups.Group#lrScale()}.
   *
   * @throws dev.sekit.SekitException when {@code lr} is negative or not finite
   */
  public void setLearningRate(double lr) {
    for (int g = 0; g < lrScales.length; g++) {
      n.setGroupLearningRate(g, lr * lrScales[g]);
    }
  }

  /** Number of groups: the default one and one per {@link ParamGroups#groups()}. */
  public int groupCount() {
    return n.groupCount();
  }

  /** The learning rate of group {@code group} (0 the default; {@code 1 + i} the i-th of the groups). */
  public double learningRate(int group) {
    Objects.checkIndex(group, lrScales.length);
    return n.groupLearningRate(group);
  }

  /** The groups this optimizer was built with. */
  public ParamGroups paramGroups() {
    return groups;
  }

  /** Number of steps taken. */
  public long steps() {
    return state.get("step").toLongArray()[0];
  }

  /**
   * The live state tensors by name ("&lt;param&gt;.momentum_buffer", ".exp_avg", ".exp_avg_sq",
   * "step"); frozen parameters have none.
   */
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
   * same kind of optimizer over the same parameters), shapes and dtypes.
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
      if (src.dtype() != e.getValue().dtype()) {
        throw new IllegalArgumentException("optimizer state " + e.getKey() + ": expected dtype "
            + e.getValue().dtype() + ", got " + src.dtype() + " (copying would convert the values; save the "
            + "state of an optimizer over a model of the same dtype)");
      }
    }
  }

  private static String sample(java.util.SortedSet<String> keys) {
    return keys.stream().limit(3).toList() + (keys.size() > 3 ? " ..." : "");
  }

  /**
   * The parameters of each module that the groups of the last optimizer built over it froze
   * (weakly held): freezing belongs to an optimizer's groups, so the next optimizer over the
   * module that does not freeze them turns their gradients back on. Parameters the user
   * froze with {@link Tensor#requiresGrad(boolean)} are left as they are.
   */
  private static final Map<Module, Set<String>> FROZEN_BY_GROUPS = Collections.synchronizedMap(new WeakHashMap<>());

  /** The native form of the groups: group per parameter, learning rate and weight decay per group. */
  private record Plan(int[] groupOf, double[] lrs, double[] weightDecays) {
    void freeze(Module module) {
      Set<String> before = FROZEN_BY_GROUPS.getOrDefault(module, Set.of());
      Set<String> now = new HashSet<>();
      int i = 0;
      for (Map.Entry<String, Tensor> e : module.namedParameters().entrySet()) {
        if (groupOf[i++] < 0) {
          e.getValue().requiresGrad(false);
          now.add(e.getKey());
        } else if (before.contains(e.getKey())) {
          e.getValue().requiresGrad(true);
        }
      }
      if (now.isEmpty()) {
        FROZEN_BY_GROUPS.remove(module);
      } else {
        FROZEN_BY_GROUPS.put(module, Set.copyOf(now));
      }
    }
  }

  private static Plan plan(Module module, ParamGroups groups, double lr, double weightDecay) {
    int[] groupOf = groups.assign(module.namedParameters().keySet());
    int n = groups.groups().size() + 1;
    double[] lrs = new double[n];
    double[] wds = new double[n];
    lrs[0] = lr;
    wds[0] = weightDecay;
    for (int g = 1; g < n; g++) {
      ParamGroups.Group gr = groups.groups().get(g - 1);
      lrs[g] = lr * gr.lrScale();
      wds[g] = gr.weightDecay() == null ? weightDecay : gr.weightDecay();
    }
    return new Plan(groupOf, lrs, wds);
  }

  /** Options of SGD. */
  public static final class SgdBuilder {
    private final Module module;
    private final double lr;
    private double momentum = 0.9;
    private double dampening;
    private double weightDecay;
    private boolean nesterov;
    private ParamGroups groups = ParamGroups.ALL;

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

    /** Parameter groups and frozen parameters (default: one group of every parameter). */
    public SgdBuilder paramGroups(ParamGroups g) {
      this.groups = Objects.requireNonNull(g, "paramGroups");
      return this;
    }

    /**
     * Builds the optimizer in {@code arena}; frozen parameters get {@code requiresGrad(false)},
     * and parameters that an earlier optimizer's groups froze but these groups do not get
     * {@code requiresGrad(true)} again.
     *
     * @throws IllegalArgumentException when a prefix of the groups matches no parameter
     */
    public Optimizer build(Arena arena) {
      Plan p = plan(module, groups, lr, weightDecay);
      NativeOptimizer o = NativeOptimizer.sgd(open(arena), Bridge.of(module), p.groupOf, p.lrs, p.weightDecays,
          momentum, dampening, nesterov);
      p.freeze(module);
      return new Optimizer(o, groups);
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
    private ParamGroups groups = ParamGroups.ALL;

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

    /** Parameter groups and frozen parameters (default: one group of every parameter). */
    public AdamWBuilder paramGroups(ParamGroups g) {
      this.groups = Objects.requireNonNull(g, "paramGroups");
      return this;
    }

    /** As {@link SgdBuilder#build(Arena)}. */
    public Optimizer build(Arena arena) {
      Plan p = plan(module, groups, lr, weightDecay);
      NativeOptimizer o = NativeOptimizer.adamW(open(arena), Bridge.of(module), p.groupOf, p.lrs, p.weightDecays,
          beta1, beta2, eps);
      p.freeze(module);
      return new Optimizer(o, groups);
    }
  }
}

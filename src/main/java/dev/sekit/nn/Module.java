package dev.sekit.nn;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeModule;
import dev.sekit.internal.NativeTensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;

/**
 * A block whose parameters and buffers live in libsekit. Its state dict uses timm's
 * names and PyTorch's order, so weights move between the two without renaming.
 *
 * <p>A module belongs to the {@link Arena} it was built in: closing the arena frees it
 * and every tensor handle it gave out. Modules are not thread-safe: in a confined arena FFM
 * refuses other threads, and in a shared arena a second thread that calls into a module (or
 * into a tensor of its state or of a graph that went through it) while another call runs
 * gets an {@link IllegalStateException}. Give each thread its own module, or hand one over
 * between calls.
 */
public abstract class Module {
  static {
    Bridge.register(m -> m.n);
  }

  private final NativeModule n;
  private final Map<String, Tensor> state;
  private final Map<String, Tensor> parameters;

  Module(NativeModule n) {
    this.n = n;
    Map<String, Tensor> all = new LinkedHashMap<>();
    Map<String, Tensor> params = new LinkedHashMap<>();
    for (Map.Entry<String, NativeTensor> e : n.state().entrySet()) {
      Tensor t = Bridge.tensor(e.getValue());
      all.put(e.getKey(), t);
      if (n.parameters().containsKey(e.getKey())) {
        params.put(e.getKey(), t);
      }
    }
    this.state = Collections.unmodifiableMap(all);
    this.parameters = Collections.unmodifiableMap(params);
  }

  /** Checks {@code arena} before a native module is made in it. */
  static Arena open(Arena arena) {
    Objects.requireNonNull(arena, "arena");
    if (!arena.scope().isAlive()) {
      throw new IllegalStateException("the arena is already closed");
    }
    return arena;
  }

  /** The arena that owns this module. */
  public Arena arena() {
    return n.arena();
  }

  /**
   * Runs the block on {@code x} ([N, C, H, W], same dtype and device as the module) and
   * records the autograd graph, as PyTorch does by default. The result belongs to
   * {@code x}'s arena.
   */
  public Tensor forward(Tensor x) {
    Objects.requireNonNull(x, "x");
    return forward(x.arena(), x, true);
  }

  /**
   * Runs the block on {@code x}.
   *
   * @param arena owns the result
   * @param recordGrad true records the autograd graph; false runs as under
   *     {@code torch.no_grad()} (less memory, no backward)
   */
  public Tensor forward(Arena arena, Tensor x, boolean recordGrad) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(x, "x");
    return Bridge.tensor(n.forward(arena, Bridge.of(x), recordGrad));
  }

  /** Training mode (BatchNorm uses batch statistics and updates its running ones). */
  public Module train() {
    n.setTraining(true);
    return this;
  }

  /** Evaluation mode (BatchNorm uses its running statistics). */
  public Module eval() {
    n.setTraining(false);
    return this;
  }

  public boolean isTraining() {
    return n.isTraining();
  }

  /** Converts every floating parameter and buffer to {@code dtype}, in place. */
  public Module to(DType dtype) {
    return to(parameters.isEmpty() ? Device.CPU : device(), dtype);
  }

  /** Moves every parameter and buffer to {@code device}, in place. */
  public Module to(Device device) {
    return to(device, parameters.isEmpty() ? DType.FLOAT32 : dtype());
  }

  /** Moves and converts every parameter and buffer in place; handles stay valid. */
  public Module to(Device device, DType dtype) {
    Objects.requireNonNull(device, "device");
    Objects.requireNonNull(dtype, "dtype");
    if (!dtype.isFloatingPoint()) {
      throw new IllegalArgumentException("modules hold floating parameters; " + dtype + " is not floating");
    }
    n.to(dtype, device);
    return this;
  }

  /**
   * Lays out every 4-d parameter and buffer in {@code format}, in place (PyTorch's
   * {@code module.to(memory_format=...)}); feed the module inputs in the same format.
   */
  public Module to(dev.sekit.MemoryFormat format) {
    Objects.requireNonNull(format, "format");
    n.to(format);
    return this;
  }

  /**
   * SE and eSE blocks in this module run fused CPU kernels by default (float32/float64,
   * NCHW or channels-last): one pass over the input to squeeze and one to scale, two passes
   * backward; so does BatchNorm+ReLU in training (float32 channels-last: two passes forward,
   * two backward), max pooling under autograd (float32 channels-last: one byte per winner,
   * a backward that gathers; the same bits as ATen's), and Linear on {@code [N, in]} CPU
   * inputs runs sekit's own kernels instead of the system BLAS (where libtorch has no MKL).
   * {@code false} selects the libtorch composition, the reference.
   */
  public Module useFusedKernels(boolean on) {
    n.setFused(on);
    return this;
  }

  /**
   * This evaluation-mode module in its fastest inference form (BatchNorm folded into the
   * convolutions, fused activations, planned buffers; see {@link InferenceModule}), in this
   * module's arena. The result follows this module's weights.
   *
   * @throws IllegalStateException when the module is in training mode (call {@link #eval()})
   */
  public InferenceModule prepareForInference() {
    if (isTraining()) {
      throw new IllegalStateException("prepareForInference needs an evaluation-mode module: call eval() first "
          + "(BatchNorm then uses its running statistics, which the preparation folds into the convolutions)");
    }
    return new InferenceModule(this, n.prepareForInference(n.arena()));
  }

  /** dtype of the parameters. */
  public DType dtype() {
    return firstParameter().dtype();
  }

  /** Device of the parameters. */
  public Device device() {
    return firstParameter().device();
  }

  private Tensor firstParameter() {
    if (namedParameters().isEmpty()) {
      throw new IllegalStateException(getClass().getSimpleName() + " has no parameters");
    }
    return parameters.values().iterator().next();
  }

  /** Parameters by timm name, in PyTorch's order. The tensors alias the module's. */
  public Map<String, Tensor> namedParameters() {
    requireAlive();
    return parameters;
  }

  /** Parameters and buffers by timm name, in PyTorch's order (aliases, like PyTorch). */
  public Map<String, Tensor> stateDict() {
    requireAlive();
    return state;
  }

  private void requireAlive() {
    if (!n.isAlive()) {
      throw new IllegalStateException("this module was closed: the arena that owns it has been closed");
    }
  }

  /** Number of parameter elements. */
  public long parameterCount() {
    long n = 0;
    for (Tensor t : namedParameters().values()) {
      n += t.numel();
    }
    return n;
  }

  /**
   * Scales all parameter gradients so that their global L2 norm is at most {@code maxNorm}
   * (torch.nn.utils.clip_grad_norm_).
   *
   * @return the norm before clipping
   */
  public double clipGradNorm(double maxNorm) {
    if (!(maxNorm > 0)) {
      throw new IllegalArgumentException("maxNorm must be > 0, got " + maxNorm);
    }
    return n.clipGradNorm(maxNorm);
  }

  /** Drops every parameter's gradient. */
  public void zeroGrad() {
    n.zeroGrad();
  }

  /** Loads {@code stateDict} strictly: same keys, shapes and dtypes as this module's. */
  public void loadStateDict(Map<String, Tensor> stateDict) {
    loadStateDict(stateDict, true, false);
  }

  /** Loads {@code stateDict} (dtypes must match); see {@link #loadStateDict(Map, boolean, boolean)}. */
  public LoadResult loadStateDict(Map<String, Tensor> stateDict, boolean strict) {
    return loadStateDict(stateDict, strict, false);
  }

  /**
   * Copies values from {@code stateDict} into this module (devices are converted).
   * Shapes must always match. With {@code strict}, the keys must be exactly this module's;
   * otherwise missing and unexpected keys are skipped and returned. With
   * {@code convertDtype}, a floating tensor of another dtype (say a float16 checkpoint into a
   * float32 model) is converted; without it, a dtype mismatch is an error.
   *
   * @throws IllegalArgumentException listing missing, unexpected, wrongly shaped and wrongly
   *     typed keys; nothing is copied in that case
   */
  public LoadResult loadStateDict(Map<String, Tensor> stateDict, boolean strict, boolean convertDtype) {
    LoadResult r = checkStateDict(stateDict, strict, convertDtype);
    Map<String, Tensor> mine = stateDict();
    for (Map.Entry<String, Tensor> e : stateDict.entrySet()) {
      Tensor dst = mine.get(e.getKey());
      if (dst != null) {
        dst.copyFrom(e.getValue());
      }
    }
    return r;
  }

  /**
   * Checks that {@code stateDict} fits this module as {@link #loadStateDict(Map, boolean,
   * boolean)} would load it, without changing anything: a way to validate several things
   * (a model and its optimizer, say) before loading any of them.
   *
   * @return the keys a non-strict load would skip
   * @throws IllegalArgumentException listing every key that does not fit
   */
  public LoadResult checkStateDict(Map<String, Tensor> stateDict, boolean strict, boolean convertDtype) {
    Objects.requireNonNull(stateDict, "stateDict");
    Map<String, Tensor> mine = stateDict();
    TreeSet<String> missing = new TreeSet<>(mine.keySet());
    missing.removeAll(stateDict.keySet());
    TreeSet<String> unexpected = new TreeSet<>(stateDict.keySet());
    unexpected.removeAll(mine.keySet());
    List<String> badShape = new ArrayList<>();
    List<String> badDType = new ArrayList<>();
    for (Map.Entry<String, Tensor> e : stateDict.entrySet()) {
      Tensor src = Objects.requireNonNull(e.getValue(), () -> "stateDict value for " + e.getKey());
      Tensor dst = mine.get(e.getKey());
      if (dst == null) {
        continue;
      }
      if (!Arrays.equals(dst.shape(), src.shape())) {
        badShape.add(e.getKey() + ": expected " + Arrays.toString(dst.shape()) + ", got "
            + Arrays.toString(src.shape()));
      }
      DType want = dst.dtype();
      DType got = src.dtype();
      if (want != got && !(convertDtype && want.isFloatingPoint() && got.isFloatingPoint())) {
        badDType.add(e.getKey() + ": expected " + want + ", got " + got);
      }
    }
    if (!badShape.isEmpty() || !badDType.isEmpty()
        || (strict && (!missing.isEmpty() || !unexpected.isEmpty()))) {
      StringBuilder sb = new StringBuilder("state dict does not fit " + getClass().getSimpleName() + ":");
      if (strict && !missing.isEmpty()) {
        sb.append(" missing keys ").append(missing).append(';');
      }
      if (strict && !unexpected.isEmpty()) {
        sb.append(" unexpected keys ").append(unexpected).append(';');
      }
      if (!badShape.isEmpty()) {
        sb.append(" wrong shapes ").append(badShape).append(';');
      }
      if (!badDType.isEmpty()) {
        sb.append(" wrong dtypes ").append(badDType)
            .append(" (pass convertDtype = true to convert);");
      }
      throw new IllegalArgumentException(sb.substring(0, sb.length() - 1));
    }
    return new LoadResult(List.copyOf(missing), List.copyOf(unexpected));
  }

  /** Keys skipped by a non-strict {@link #loadStateDict(Map, boolean)}. */
  public record LoadResult(List<String> missingKeys, List<String> unexpectedKeys) {}

  /** Whether the native module is still usable (its arena is open). */
  public boolean isAlive() {
    return n.isAlive();
  }
}

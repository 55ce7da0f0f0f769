package dev.sekit.nn;

import static dev.sekit.internal.Native.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Tensor;
import dev.sekit.internal.Native;
import dev.sekit.internal.TensorAccess;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
 * and every tensor handle it gave out. Modules are not thread-safe.
 */
public abstract class Module {
  static {
    dev.sekit.internal.ModuleAccess.set(Module::handle);
  }

  private final MemorySegment handle;
  private final Arena arena;
  private final Map<String, Tensor> state;
  private final Map<String, Tensor> parameters;

  Module(MemorySegment ownedHandle, Arena arena) {
    this.handle = ownedHandle;
    this.arena = arena;
    Map<String, Tensor> all = new LinkedHashMap<>();
    Map<String, Tensor> params = new LinkedHashMap<>();
    TensorAccess ta = TensorAccess.get();
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment count = scratch.allocate(JAVA_LONG);
      check(sekit_h.sk_module_state_count(handle, count));
      MemorySegment name = scratch.allocate(ADDRESS);
      MemorySegment isParam = scratch.allocate(JAVA_INT);
      MemorySegment out = scratch.allocate(ADDRESS);
      for (long i = 0; i < count.get(JAVA_LONG, 0); i++) {
        check(sekit_h.sk_module_state_entry(handle, i, name, isParam, out));
        Tensor t = ta.adopt(out.get(ADDRESS, 0), arena, List.of());
        String key = name.get(ADDRESS, 0).reinterpret(Long.MAX_VALUE).getString(0);
        all.put(key, t);
        if (isParam.get(JAVA_INT, 0) == 1) {
          params.put(key, t);
        }
      }
    }
    this.state = Collections.unmodifiableMap(all);
    this.parameters = Collections.unmodifiableMap(params);
  }

  /** Creates the native module in {@code arena}, failing cleanly if the arena is closed. */
  static MemorySegment create(Arena arena, java.util.function.Function<MemorySegment, MemorySegment> ctor) {
    Objects.requireNonNull(arena, "arena");
    Native.init();
    Native.requireOpen(arena, "the arena");
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(ctor.apply(out));
      return Native.ownModule(out.get(ADDRESS, 0), arena);
    }
  }

  MemorySegment handle() {
    Native.checkAlive(handle, "this module");
    return handle;
  }

  /** The arena that owns this module. */
  public Arena arena() {
    return arena;
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
    Native.requireOpen(arena, "the arena for the result");
    TensorAccess ta = TensorAccess.get();
    MemorySegment xh = ta.handle(x);
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_module_forward(handle(), xh, recordGrad ? 1 : 0, out));
      return ta.adopt(out.get(ADDRESS, 0), arena, ta.borrowed(x));
    }
  }

  /** Training mode (BatchNorm uses batch statistics and updates its running ones). */
  public Module train() {
    check(sekit_h.sk_module_set_training(handle(), 1));
    return this;
  }

  /** Evaluation mode (BatchNorm uses its running statistics). */
  public Module eval() {
    check(sekit_h.sk_module_set_training(handle(), 0));
    return this;
  }

  public boolean isTraining() {
    return sekit_h.sk_module_is_training(handle()) == 1;
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
    check(sekit_h.sk_module_to(handle(), dtype.code(), device.type() == Device.Type.CUDA ? 1 : 0,
        device.index()));
    return this;
  }

  /**
   * Lays out every 4-d parameter and buffer in {@code format}, in place (PyTorch's
   * {@code module.to(memory_format=...)}); feed the module inputs in the same format.
   */
  public Module to(dev.sekit.MemoryFormat format) {
    Objects.requireNonNull(format, "format");
    check(sekit_h.sk_module_to_format(handle(), format.code()));
    return this;
  }

  /**
   * SE and eSE blocks in this module run fused CPU kernels by default (float32/float64,
   * NCHW or channels-last): one pass over the input to squeeze and one to scale, two passes
   * backward. {@code false} selects the libtorch composition, the reference.
   */
  public Module useFusedKernels(boolean on) {
    check(sekit_h.sk_module_set_fused(handle(), on ? 1 : 0));
    return this;
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
    handle();
    return parameters;
  }

  /** Parameters and buffers by timm name, in PyTorch's order (aliases, like PyTorch). */
  public Map<String, Tensor> stateDict() {
    handle();
    return state;
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
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = scratch.allocate(JAVA_DOUBLE);
      check(sekit_h.sk_clip_grad_norm(handle(), maxNorm, out));
      return out.get(JAVA_DOUBLE, 0);
    }
  }

  /** Drops every parameter's gradient. */
  public void zeroGrad() {
    for (Tensor t : namedParameters().values()) {
      t.clearGrad();
    }
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
    Objects.requireNonNull(stateDict, "stateDict");
    Map<String, Tensor> mine = stateDict();
    TreeSet<String> missing = new TreeSet<>(mine.keySet());
    missing.removeAll(stateDict.keySet());
    TreeSet<String> unexpected = new TreeSet<>(stateDict.keySet());
    unexpected.removeAll(mine.keySet());
    List<String> badShape = new ArrayList<>();
    List<String> badDType = new ArrayList<>();
    for (Map.Entry<String, Tensor> e : stateDict.entrySet()) {
      Tensor dst = mine.get(e.getKey());
      Tensor src = Objects.requireNonNull(e.getValue(), () -> "stateDict value for " + e.getKey());
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
    for (Map.Entry<String, Tensor> e : stateDict.entrySet()) {
      Tensor dst = mine.get(e.getKey());
      if (dst != null) {
        dst.copyFrom(e.getValue());
      }
    }
    return new LoadResult(List.copyOf(missing), List.copyOf(unexpected));
  }

  /** Keys skipped by a non-strict {@link #loadStateDict(Map, boolean)}. */
  public record LoadResult(List<String> missingKeys, List<String> unexpectedKeys) {}

  /** Whether the native module is still usable (its arena is open). */
  public boolean isAlive() {
    return handle.scope().isAlive();
  }
}

package dev.sekit.nn;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.List;
import java.util.Objects;

/**
 * A module prepared for inference by {@link Module#prepareForInference()}: the same function
 * as its source's evaluation-mode forward, computed faster and without autograd.
 *
 * <p>For float32 on the CPU, VoVNets, OSA stages and blocks, {@code ConvNormAct}, SE/eSE,
 * max pooling, the classifier head and {@code Sequential}s of them run a plan made once per
 * input size: BatchNorm folded into the convolution weights, ReLU fused into the
 * convolution, one blocked memory layout for every activation (oneDNN's), weights reordered
 * once, the OSA aggregation written in place instead of concatenated, SE/eSE on fused
 * kernels, and every intermediate buffer planned once and reused, so that a steady-state call
 * allocates only its result. Anything else ({@link #isPlanned()} false: float64, CUDA, other
 * blocks, weights with NaN or infinity) runs the source's own forward in evaluation mode
 * without autograd, and so does an input with a NaN or an infinite value (the fused steps
 * would not propagate them as PyTorch does; one pass over the input finds them).
 *
 * <p>The prepared module follows its source: after the source's weights change (a
 * {@code loadStateDict}, a training step, {@code to(...)}), the next call plans again with
 * the new values; after {@code to(FLOAT64)} or to another device it is no longer planned and
 * computes (or refuses, with the source's message) whatever the source's forward does. Writes through a {@link Tensor#data()} view of a parameter are not seen;
 * prepare again after those. It belongs to the source's arena and, like modules, is not
 * thread-safe: give each thread its own.
 *
 * <pre>{@code
 * VoVNet net = VoVNet.create(arena, "ese_vovnet19b_dw");
 * net.loadStateDict(SafeTensors.open(arena, path).tensors());
 * InferenceModule fast = net.eval().prepareForInference();
 * Tensor logits = fast.forward(arena, images);                 // NCHW or channels-last input
 * List<Tensor> maps = fast.forwardStages(arena, images);        // VoVNet only
 * }</pre>
 */
public final class InferenceModule {
  private final Module source;
  private final NativeModule n;

  InferenceModule(Module source, NativeModule n) {
    this.source = source;
    this.n = n;
  }

  /** The module this one was prepared from. */
  public Module source() {
    return source;
  }

  /** The arena that owns this prepared module (its source's). */
  public Arena arena() {
    return n.arena();
  }

  /**
   * Whether float32 CPU inputs run the prepared plan; false when this module runs its
   * source's own forward (other dtypes or devices, or blocks the plan does not cover). Follows
   * the source: false after the source moved to float64 or to a GPU, true again when it is back.
   */
  public boolean isPlanned() {
    return n.inferencePlan() == 1;
  }

  /** The output for {@code x} ([N, C, H, W], NCHW or channels-last), in {@code x}'s arena. */
  public Tensor forward(Tensor x) {
    Objects.requireNonNull(x, "x");
    return forward(x.arena(), x);
  }

  /**
   * The output for {@code x}, owned by {@code arena}: what the source's
   * {@code forward(arena, x, false)} gives in evaluation mode (feature maps come back
   * channels-last).
   */
  public Tensor forward(Arena arena, Tensor x) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(x, "x");
    return Bridge.tensor(n.forward(arena, Bridge.of(x), false));
  }

  /**
   * The four stage maps (strides 4, 8, 16, 32) of a prepared {@link VoVNet}, channels-last,
   * owned by {@code arena}.
   *
   * @throws IllegalStateException when the source is not a VoVNet
   */
  public List<Tensor> forwardStages(Arena arena, Tensor x) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(x, "x");
    if (!(source instanceof VoVNet)) {
      throw new IllegalStateException("forwardStages needs a prepared VoVNet; this one was prepared from "
          + source.getClass().getSimpleName());
    }
    return n.forwardStages(arena, Bridge.of(x), false).stream().map(Bridge::tensor).toList();
  }

  /** Whether this prepared module is still usable (its arena is open). */
  public boolean isAlive() {
    return n.isAlive();
  }

  @Override
  public String toString() {
    return "InferenceModule(" + source + (isAlive() && isPlanned() ? ", planned" : "") + ")";
  }
}

package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * Effective Squeeze-and-Excitation (eSE, Lee &amp; Park, CenterMask 2020), as timm's
 * {@code EffectiveSEModule}:
 *
 * <pre>
 *   y = x * hard_sigmoid(fc(mean_hw(x)))     hard_sigmoid(z) = relu6(z + 3) / 6
 * </pre>
 *
 * One C→C 1×1 convolution with bias and no bottleneck, so no channel information is lost
 * to a reduction. Parameters: {@code fc.weight [C,C,1,1]}, {@code fc.bias [C]}.
 * Built in float32 on the CPU, in training mode, with PyTorch's default initialisation.
 */
public final class EffectiveSqueezeExcitation extends Module {
  private final int channels;

  private EffectiveSqueezeExcitation(int channels, Activation gate, boolean addMaxPool, Arena arena) {
    super(NativeModule.effectiveSqueezeExcitation(open(arena), channels, gate, addMaxPool));
    this.channels = channels;
  }

  /** An eSE block with timm's defaults (hard-sigmoid gate, mean squeeze). */
  public static EffectiveSqueezeExcitation of(Arena arena, int channels) {
    return builder(channels).build(arena);
  }

  public static Builder builder(int channels) {
    return new Builder(channels);
  }

  public int channels() {
    return channels;
  }

  /** Options of an eSE block; defaults are timm's. */
  public static final class Builder {
    private final int channels;
    private Activation gate = Activation.HARD_SIGMOID;
    private boolean addMaxPool;

    private Builder(int channels) {
      if (channels < 1) {
        throw new IllegalArgumentException("channels must be >= 1, got " + channels);
      }
      this.channels = channels;
    }

    /** Gate (default hard sigmoid). */
    public Builder gate(Activation gate) {
      this.gate = Objects.requireNonNull(gate, "gate");
      return this;
    }

    /** Squeeze with 0.5·mean + 0.5·max (timm's add_maxpool). */
    public Builder addMaxPool(boolean on) {
      this.addMaxPool = on;
      return this;
    }

    public EffectiveSqueezeExcitation build(Arena arena) {
      return new EffectiveSqueezeExcitation(channels, gate, addMaxPool, arena);
    }
  }

  @Override
  public String toString() {
    return "EffectiveSqueezeExcitation(" + channels + ")";
  }
}

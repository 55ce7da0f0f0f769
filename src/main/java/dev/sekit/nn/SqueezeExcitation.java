package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * Squeeze-and-Excitation (Hu et al., 2018), as timm's {@code SEModule}:
 *
 * <pre>
 *   s = mean_hw(x)                  (addMaxPool: 0.5 * mean + 0.5 * max)
 *   y = x * gate(fc2(act(bn(fc1(s)))))
 * </pre>
 *
 * fc1 maps C to R channels and fc2 back, both 1×1 convolutions. Parameters:
 * {@code fc1.weight [R,C,1,1]}, {@code fc1.bias [R]}, {@code fc2.weight [C,R,1,1]},
 * {@code fc2.bias [C]} — the names timm and torchvision use. Defaults are timm's:
 * rdRatio 1/16, rdDivisor 8, bias, ReLU, sigmoid gate, no max pool, no BatchNorm.
 * R is {@code max(rdDivisor, floor((C * rdRatio + rdDivisor / 2) / rdDivisor) * rdDivisor)}
 * unless {@link Builder#rdChannels} fixes it (torchvision's {@code squeeze_channels}, or
 * the paper's C/r via {@link Builder#reduction}).
 *
 * <p>Built in float32 on the CPU, in training mode, with PyTorch's default initialisation.
 */
public final class SqueezeExcitation extends Module {
  private final int channels;
  private final int reducedChannels;

  private SqueezeExcitation(Builder b, Arena arena) {
    super(NativeModule.squeezeExcitation(open(arena), b.channels, b.rdRatio, b.rdChannels, b.rdDivisor, b.bias,
        b.act, b.gate, b.addMaxPool, b.batchNorm));
    this.channels = b.channels;
    this.reducedChannels = (int) namedParameters().get("fc1.weight").size(0);
  }

  /** An SE block with timm's defaults for {@code channels}. */
  public static SqueezeExcitation of(Arena arena, int channels) {
    return builder(channels).build(arena);
  }

  public static Builder builder(int channels) {
    return new Builder(channels);
  }

  public int channels() {
    return channels;
  }

  /** R, the width of the bottleneck. */
  public int reducedChannels() {
    return reducedChannels;
  }

  /** Options of an SE block; defaults are timm's. */
  public static final class Builder {
    private final int channels;
    private double rdRatio = 1.0 / 16;
    private int rdChannels = -1;
    private int rdDivisor = 8;
    private boolean bias = true;
    private Activation act = Activation.RELU;
    private Activation gate = Activation.SIGMOID;
    private boolean addMaxPool;
    private boolean batchNorm;

    private Builder(int channels) {
      if (channels < 1) {
        throw new IllegalArgumentException("channels must be >= 1, got " + channels);
      }
      this.channels = channels;
    }

    /** Bottleneck ratio R ≈ C · ratio, rounded to rdDivisor (timm's rd_ratio). */
    public Builder rdRatio(double ratio) {
      if (!(ratio > 0 && ratio <= 1024)) {
        throw new IllegalArgumentException("rdRatio must be in (0, 1024], got " + ratio);
      }
      this.rdRatio = ratio;
      return this;
    }

    /** Fixes R exactly (timm's rd_channels, torchvision's squeeze_channels). */
    public Builder rdChannels(int rd) {
      if (rd < 1) {
        throw new IllegalArgumentException("rdChannels must be >= 1, got " + rd);
      }
      this.rdChannels = rd;
      return this;
    }

    /** The paper's reduction ratio r: R = C / r exactly (C must be divisible by r). */
    public Builder reduction(int r) {
      if (r < 1 || channels % r != 0) {
        throw new IllegalArgumentException("reduction r must be >= 1 and divide channels "
            + channels + ", got " + r);
      }
      return rdChannels(channels / r);
    }

    /** R is rounded to a multiple of this (timm's rd_divisor, default 8). */
    public Builder rdDivisor(int divisor) {
      if (divisor < 1) {
        throw new IllegalArgumentException("rdDivisor must be >= 1, got " + divisor);
      }
      this.rdDivisor = divisor;
      return this;
    }

    public Builder bias(boolean bias) {
      this.bias = bias;
      return this;
    }

    /** Activation between fc1 and fc2 (default ReLU). */
    public Builder activation(Activation act) {
      this.act = Objects.requireNonNull(act, "act");
      return this;
    }

    /** Gate applied to the excitation (default sigmoid). */
    public Builder gate(Activation gate) {
      this.gate = Objects.requireNonNull(gate, "gate");
      return this;
    }

    /** Squeeze with 0.5·mean + 0.5·max instead of the mean (timm's add_maxpool). */
    public Builder addMaxPool(boolean on) {
      this.addMaxPool = on;
      return this;
    }

    /** BatchNorm after fc1, named {@code bn} (timm's norm_layer). */
    public Builder batchNorm(boolean on) {
      this.batchNorm = on;
      return this;
    }

    /** Builds the block in {@code arena}, which will free it. */
    public SqueezeExcitation build(Arena arena) {
      return new SqueezeExcitation(this, arena);
    }
  }

  @Override
  public String toString() {
    return "SqueezeExcitation(" + channels + " -> " + reducedChannels + " -> " + channels + ")";
  }

}

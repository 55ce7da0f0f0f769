package dev.sekit.nn;

import java.util.Objects;

/**
 * The channel attention on the branch of a {@link ResidualBlock} (and so of every block of a
 * {@link ResNet}): none, SE or eSE, with SE's options as {@link SqueezeExcitation} has them.
 *
 * <p>SE's reduced width R for a block of C output channels is {@code rdChannels} when it is
 * set (&gt; 0), else {@code C / reduction} (floored, as timm's {@code senet.py}) when
 * {@code reduction} is set, else timm's
 * {@code max(rdDivisor, floor((C·rdRatio + rdDivisor/2) / rdDivisor)·rdDivisor)}.
 *
 * @param kind none, SE or eSE
 * @param rdRatio SE: R ≈ C · rdRatio, rounded to rdDivisor (timm: 1/16)
 * @param rdDivisor SE: the rounding of R (timm: 8)
 * @param rdChannels SE: a fixed R, or 0
 * @param reduction SE: the paper's r (R = C / r), or 0
 * @param bias SE: biases on fc1 and fc2
 * @param activation SE: between fc1 and fc2 (timm: ReLU)
 * @param gate the gate (timm: sigmoid for SE, hard sigmoid for eSE)
 */
public record AttentionConfig(Attention kind, double rdRatio, int rdDivisor, int rdChannels, int reduction,
    boolean bias, Activation activation, Activation gate) {

  public AttentionConfig {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(activation, "activation");
    Objects.requireNonNull(gate, "gate");
    if (!(rdRatio > 0 && rdRatio <= 1024)) {
      throw new IllegalArgumentException("rdRatio must be in (0, 1024], got " + rdRatio);
    }
    if (rdDivisor < 1) {
      throw new IllegalArgumentException("rdDivisor must be >= 1, got " + rdDivisor);
    }
    if (rdChannels < 0) {
      throw new IllegalArgumentException("rdChannels must be >= 0 (0: derived), got " + rdChannels);
    }
    if (reduction < 0) {
      throw new IllegalArgumentException("reduction must be >= 0 (0: rdRatio), got " + reduction);
    }
  }

  /** No attention: a plain ResNet block. */
  public static AttentionConfig none() {
    return new AttentionConfig(Attention.NONE, 1.0 / 16, 8, 0, 0, true, Activation.RELU, Activation.SIGMOID);
  }

  /** timm's {@code attn_layer='se'}: SEModule with rd_ratio 1/16, rd_divisor 8, ReLU, sigmoid, biases. */
  public static AttentionConfig se() {
    return new AttentionConfig(Attention.SE, 1.0 / 16, 8, 0, 0, true, Activation.RELU, Activation.SIGMOID);
  }

  /** The paper's SE with reduction ratio r: R = C / r (timm's {@code senet.py} SEModule). */
  public static AttentionConfig seReduction(int r) {
    if (r < 1) {
      throw new IllegalArgumentException("reduction r must be >= 1, got " + r);
    }
    return se().withReduction(r);
  }

  /** timm's {@code attn_layer='ese'}: EffectiveSEModule, hard-sigmoid gate. */
  public static AttentionConfig ese() {
    return new AttentionConfig(Attention.ESE, 1.0 / 16, 8, 0, 0, true, Activation.RELU, Activation.HARD_SIGMOID);
  }

  /** timm's attention of this kind ({@link #none()}, {@link #se()} or {@link #ese()}). */
  public static AttentionConfig of(Attention kind) {
    return switch (Objects.requireNonNull(kind, "kind")) {
      case NONE -> none();
      case SE -> se();
      case ESE -> ese();
    };
  }

  public AttentionConfig withRdRatio(double ratio, int divisor) {
    return new AttentionConfig(kind, ratio, divisor, 0, 0, bias, activation, gate);
  }

  public AttentionConfig withRdChannels(int rd) {
    if (rd < 1) {
      throw new IllegalArgumentException("rdChannels must be >= 1, got " + rd);
    }
    return new AttentionConfig(kind, rdRatio, rdDivisor, rd, 0, bias, activation, gate);
  }

  public AttentionConfig withReduction(int r) {
    return new AttentionConfig(kind, rdRatio, rdDivisor, 0, r, bias, activation, gate);
  }

  public AttentionConfig withBias(boolean on) {
    return new AttentionConfig(kind, rdRatio, rdDivisor, rdChannels, reduction, on, activation, gate);
  }

  public AttentionConfig withActivation(Activation act) {
    return new AttentionConfig(kind, rdRatio, rdDivisor, rdChannels, reduction, bias, act, gate);
  }

  public AttentionConfig withGate(Activation g) {
    return new AttentionConfig(kind, rdRatio, rdDivisor, rdChannels, reduction, bias, activation, g);
  }

  /** R for a block of {@code channels} output channels (SE only). */
  public int reducedChannels(int channels) {
    if (rdChannels > 0) {
      return rdChannels;
    }
    if (reduction > 0) {
      return channels / reduction;
    }
    double v = channels * rdRatio;
    return Math.max(rdDivisor, (int) (v + rdDivisor / 2.0) / rdDivisor * rdDivisor);
  }
}

package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * A residual block with channel attention (SE by default) on its branch, before the
 * shortcut is added — as SENet and timm place it:
 *
 * <pre>
 *   BASIC              y = bn2(conv2(relu(bn1(conv1(x)))))              3×3 (stride), 3×3
 *   BOTTLENECK         y = bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))
 *                      1×1, 3×3 (stride, groups = cardinality), 1×1 to 4·planes;
 *                      width = floor(planes · baseWidth / 64) · cardinality (ResNeXt)
 *   LEGACY_BOTTLENECK  the same with the stride on the 1×1 conv1 (timm senet.py, the paper's
 *                      Caffe layout); the attention is named {@code se_module}
 *   then               out = relu(se(y) + shortcut(x))
 *
 *   PRE_ACTIVATION     y = conv2(relu(norm2(conv1(relu(norm1(x))))));  out = x + se(y)
 *                      (the SE source texts' block: same width, stride 1, no final ReLU)
 * </pre>
 *
 * Names are timm's: {@code conv1, bn1, conv2, bn2[, conv3, bn3], se.fc1/fc2} (or
 * {@code se.fc} for eSE), {@code downsample.0/.1} for a convolution shortcut and
 * {@code downsample.1/.2} for an average-pool one; {@code norm1, conv1, norm2, conv2, se} for
 * the pre-activation block. Built in float32 on the CPU, in training mode, with PyTorch's
 * default initialisation; the attention runs the fused SE/eSE kernels unless
 * {@link #useFusedKernels(boolean) useFusedKernels(false)}.
 */
public final class ResidualBlock extends Module {

  /** The block's layout. */
  public enum Kind {
    /** timm BasicBlock (ResNet-18/34): two 3×3 convolutions, expansion 1. */
    BASIC(1),
    /** timm Bottleneck (ResNet-50 and deeper, ResNeXt with cardinality): expansion 4. */
    BOTTLENECK(4),
    /** timm senet.py SEResNetBottleneck (legacy_seresnet*): stride on the 1×1, expansion 4. */
    LEGACY_BOTTLENECK(4),
    /** BN → ReLU → 3×3 twice, SE, identity added (the SE source texts). */
    PRE_ACTIVATION(1);

    private final int expansion;

    Kind(int expansion) {
      this.expansion = expansion;
    }

    /** Output channels per plane: 1 or 4. */
    public int expansion() {
      return expansion;
    }
  }

  /** The block's shortcut. */
  public enum Shortcut {
    /** x itself: stride 1 and the same width. */
    IDENTITY,
    /** 1×1 convolution with the stride, then BN (timm downsample_conv). */
    CONV,
    /** 2×2 average pool with the stride (ceil mode, padding not counted), 1×1 convolution, BN (timm avg_down). */
    AVG_POOL_CONV
  }

  private final Kind kind;
  private final int outChannels;

  private ResidualBlock(Builder b, Arena arena) {
    super(NativeModule.residualBlock(open(arena), b.kind, b.in, b.planes, b.stride, b.cardinality, b.baseWidth,
        b.shortcut, b.attention));
    this.kind = b.kind;
    this.outChannels = b.planes * b.kind.expansion();
  }

  /**
   * A block of {@code kind} from {@code inChannels} with {@code planes} (output width
   * {@code planes · kind.expansion()}); stride 1, identity shortcut, timm's SE.
   */
  public static Builder builder(Kind kind, int inChannels, int planes) {
    return new Builder(kind, inChannels, planes);
  }

  public Kind kind() {
    return kind;
  }

  public int outChannels() {
    return outChannels;
  }

  /** Options of a residual block. */
  public static final class Builder {
    private final Kind kind;
    private final int in;
    private final int planes;
    private int stride = 1;
    private int cardinality = 1;
    private int baseWidth = 64;
    private Shortcut shortcut = Shortcut.IDENTITY;
    private AttentionConfig attention = AttentionConfig.se();

    private Builder(Kind kind, int in, int planes) {
      this.kind = Objects.requireNonNull(kind, "kind");
      OsaBlock.positive("inChannels", in);
      OsaBlock.positive("planes", planes);
      this.in = in;
      this.planes = planes;
    }

    /** Stride of the block (the 3×3 conv; the 1×1 conv1 for LEGACY_BOTTLENECK). */
    public Builder stride(int s) {
      OsaBlock.positive("stride", s);
      this.stride = s;
      return this;
    }

    /** Groups of the bottleneck's 3×3 convolution (ResNeXt: 32). */
    public Builder cardinality(int c) {
      OsaBlock.positive("cardinality", c);
      this.cardinality = c;
      return this;
    }

    /** Width per group of the bottleneck, in 64ths of planes (ResNeXt 32x4d: 4). */
    public Builder baseWidth(int w) {
      OsaBlock.positive("baseWidth", w);
      this.baseWidth = w;
      return this;
    }

    public Builder shortcut(Shortcut s) {
      this.shortcut = Objects.requireNonNull(s, "shortcut");
      return this;
    }

    public Builder attention(AttentionConfig a) {
      this.attention = Objects.requireNonNull(a, "attention");
      return this;
    }

    public ResidualBlock build(Arena arena) {
      int out = planes * kind.expansion();
      if ((kind == Kind.BASIC || kind == Kind.PRE_ACTIVATION) && (cardinality != 1 || baseWidth != 64)) {
        throw new IllegalArgumentException(kind + " blocks have cardinality 1 and baseWidth 64 (as in timm), got "
            + cardinality + " and " + baseWidth);
      }
      if (kind == Kind.PRE_ACTIVATION && (stride != 1 || shortcut != Shortcut.IDENTITY)) {
        throw new IllegalArgumentException("the pre-activation block keeps its size: stride 1, identity shortcut");
      }
      if (shortcut == Shortcut.IDENTITY && (stride != 1 || in != out)) {
        throw new IllegalArgumentException("an identity shortcut needs stride 1 and inChannels == " + out
            + " (the block's output width), got stride " + stride + " and inChannels " + in
            + "; use Shortcut.CONV or AVG_POOL_CONV");
      }
      if (attention.kind() == Attention.SE && attention.rdChannels() == 0
          && attention.reducedChannels(out) < 1) {
        throw new IllegalArgumentException("SE with reduction " + attention.reduction() + " leaves no channels of "
            + out);
      }
      return new ResidualBlock(this, arena);
    }
  }

  @Override
  public String toString() {
    return "ResidualBlock(" + kind + ", out " + outChannels + ")";
  }
}

package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * One-Shot-Aggregation block (VoVNet; V2 adds the residual and eSE), as timm's OsaBlock:
 *
 * <pre>
 *   outputs = [x]; h = x                    (depthwise, in != mid: h = conv_reduction(h))
 *   for j &lt; layers: h = conv_mid[j](h); outputs += h
 *   z = conv_concat(cat(outputs))            in + layers·mid → out, 1×1
 *   z = attn(z); if residual: z = z + x
 * </pre>
 *
 * The concatenation includes the unreduced input. Names: {@code conv_reduction.*},
 * {@code conv_mid.{j}.conv/bn} (or {@code .conv_dw/.conv_pw/.bn}), {@code conv_concat.*},
 * {@code attn.fc} (eSE) or {@code attn.fc1/fc2} (SE). Built in float32, CPU, training mode.
 */
public final class OsaBlock extends Module {
  private OsaBlock(Builder b, Arena arena) {
    super(NativeModule.osaBlock(open(arena), b.in, b.mid, b.out, b.layers, b.residual, b.depthwise, b.attention));
  }

  /** A block of in → (layers × mid) → out channels; no residual, not depthwise, no attention. */
  public static Builder builder(int inChannels, int midChannels, int outChannels, int layers) {
    return new Builder(inChannels, midChannels, outChannels, layers);
  }

  /** Options of an OSA block. */
  public static final class Builder {
    private final int in;
    private final int mid;
    private final int out;
    private final int layers;
    private boolean residual;
    private boolean depthwise;
    private Attention attention = Attention.NONE;

    private Builder(int in, int mid, int out, int layers) {
      positive("inChannels", in);
      positive("midChannels", mid);
      positive("outChannels", out);
      positive("layers", layers);
      this.in = in;
      this.mid = mid;
      this.out = out;
      this.layers = layers;
    }

    /** Adds the input to the output (needs in == out). */
    public Builder residual(boolean on) {
      this.residual = on;
      return this;
    }

    /** Separable 3×3 convolutions, with a 1×1 reduction first when in != mid. */
    public Builder depthwise(boolean on) {
      this.depthwise = on;
      return this;
    }

    public Builder attention(Attention a) {
      this.attention = Objects.requireNonNull(a, "attention");
      return this;
    }

    public OsaBlock build(Arena arena) {
      if (residual && in != out) {
        throw new IllegalArgumentException("a residual OSA block needs inChannels == outChannels, got "
            + in + " and " + out);
      }
      if (residual && depthwise && in != mid) {
        throw new IllegalArgumentException("a depthwise OSA block with inChannels != midChannels "
            + "cannot be residual (as in timm)");
      }
      return new OsaBlock(this, arena);
    }
  }

  static void positive(String name, int v) {
    if (v < 1) {
      throw new IllegalArgumentException(name + " must be >= 1, got " + v);
    }
  }
}

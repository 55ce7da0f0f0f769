package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * A stage of OSA blocks, as timm's OsaStage: an optional MaxPool2d(3, 2, ceil_mode)
 * ({@code pool}, no parameters), then {@code blocks.{i}}. Block 0 maps in → out; the others
 * out → out with the residual (when enabled). By default attention sits on the last block
 * only, as in timm; {@link Builder#attentionOnEveryBlock} puts it on every block, as the
 * original VoVNetV2 code does.
 */
public final class OsaStage extends Module {
  private OsaStage(Builder b, Arena arena) {
    super(NativeModule.osaStage(open(arena), b.in, b.mid, b.out, b.blocks, b.layers, b.downsample, b.residual,
        b.depthwise, b.attention, b.everyBlock));
  }

  public static Builder builder(int inChannels, int midChannels, int outChannels, int blocks, int layers) {
    return new Builder(inChannels, midChannels, outChannels, blocks, layers);
  }

  /** Options of an OSA stage; defaults: downsample, residual, eSE on the last block. */
  public static final class Builder {
    private final int in;
    private final int mid;
    private final int out;
    private final int blocks;
    private final int layers;
    private boolean downsample = true;
    private boolean residual = true;
    private boolean depthwise;
    private Attention attention = Attention.ESE;
    private boolean everyBlock;

    private Builder(int in, int mid, int out, int blocks, int layers) {
      OsaBlock.positive("inChannels", in);
      OsaBlock.positive("midChannels", mid);
      OsaBlock.positive("outChannels", out);
      OsaBlock.positive("blocks", blocks);
      OsaBlock.positive("layers", layers);
      this.in = in;
      this.mid = mid;
      this.out = out;
      this.blocks = blocks;
      this.layers = layers;
    }

    /** Leading MaxPool2d(3, 2, ceil_mode=True). */
    public Builder downsample(boolean on) {
      this.downsample = on;
      return this;
    }

    /** Residual on every block but the first. */
    public Builder residual(boolean on) {
      this.residual = on;
      return this;
    }

    public Builder depthwise(boolean on) {
      this.depthwise = on;
      return this;
    }

    public Builder attention(Attention a) {
      this.attention = Objects.requireNonNull(a, "attention");
      return this;
    }

    /** Attention on every block (original VoVNetV2) instead of the last one only (timm). */
    public Builder attentionOnEveryBlock(boolean on) {
      this.everyBlock = on;
      return this;
    }

    public OsaStage build(Arena arena) {
      if (depthwise && residual && blocks > 1 && out != mid) {
        // blocks after the first map out -> out with the residual; timm forbids a reduction there
        throw new IllegalArgumentException("a depthwise residual stage of several blocks needs "
            + "outChannels == midChannels (timm asserts this)");
      }
      return new OsaStage(this, arena);
    }
  }
}

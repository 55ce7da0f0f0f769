package dev.sekit.nn;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * SE-ResNets, SE-ResNeXts and ResNets, as timm builds them: {@code resnet.py}'s ResNet
 * (stem, {@code layer1..layer4} of {@link ResidualBlock}s with SE on every block, global
 * average pool, {@code fc}) and, for {@code legacy_seresnet50}, {@code senet.py}'s SENet
 * (the paper's layout: {@code layer0}, {@code pool0}, stride on the 1×1,
 * {@code se_module}, {@code last_linear}). State-dict keys, their order and parameter counts
 * equal timm's, so a timm checkpoint loads with {@link #loadStateDict}.
 *
 * <pre>{@code
 * ResNet net = ResNet.create(arena, "seresnet50");                 // 1000 classes, 28,088,024 parameters
 * ResNet backbone = ResNet.builder("seresnext26d_32x4d").numClasses(0).build(arena);
 * List<Tensor> maps = backbone.forwardStages(arena, images, false); // strides 4, 8, 16, 32
 * }</pre>
 *
 * timm's initialisation: Kaiming-normal (fan_out, ReLU) for every convolution, the last
 * BatchNorm of each block zeroed (not in the legacy layout), PyTorch's Linear. The SE blocks
 * run the fused kernels unless {@link #useFusedKernels(boolean) useFusedKernels(false)}.
 */
public final class ResNet extends Module {

  /** The stem before {@code layer1}. */
  public enum Stem {
    /** {@code conv1} 7×7/2 → {@code bn1} → ReLU → max pool 3/2 (timm's default). */
    CONV7X7,
    /** {@code conv1} = three 3×3 convolutions (w, w, 2w; the first with stride 2) → bn1 → ReLU → max pool (timm 'deep', the "d" models). */
    DEEP,
    /** {@code layer0.conv1} 7×7/2 → {@code layer0.bn1} → ReLU → {@code pool0} 3/2 with ceil mode; head {@code last_linear} (timm senet.py). */
    LEGACY,
    /** {@code conv1} 3×3/1 → {@code bn1} → ReLU, no pooling: for 28×28 or 32×32 images (stage strides 1, 2, 4, 8). */
    SMALL
  }

  /**
   * The architecture of a ResNet.
   *
   * @param block the residual block (not PRE_ACTIVATION)
   * @param layers blocks per stage (4 entries)
   * @param channels planes per stage (4 entries; timm: 64, 128, 256, 512)
   * @param cardinality groups of the bottleneck's 3×3 (ResNeXt)
   * @param baseWidth width per group (64 for ResNet, 4 for ResNeXt 32x4d)
   * @param stem the stem
   * @param stemWidth the stem's width (the deep stem ends with twice this)
   * @param avgDown average-pool shortcuts (the "d" models) instead of strided 1×1 convolutions
   * @param attention the attention of every block (rdChannels must be 0: R is per block)
   * @param dropRate timm's default dropout before the classifier (0.2 in senet.py, else 0)
   */
  public record Config(ResidualBlock.Kind block, int[] layers, int[] channels, int cardinality, int baseWidth,
      Stem stem, int stemWidth, boolean avgDown, AttentionConfig attention, double dropRate) {
    public Config {
      Objects.requireNonNull(block, "block");
      Objects.requireNonNull(stem, "stem");
      Objects.requireNonNull(attention, "attention");
      if (block == ResidualBlock.Kind.PRE_ACTIVATION) {
        throw new IllegalArgumentException("ResNets of pre-activation blocks are not defined; build the blocks singly");
      }
      layers = check("layers", layers);
      channels = check("channels", channels);
      OsaBlock.positive("cardinality", cardinality);
      OsaBlock.positive("baseWidth", baseWidth);
      OsaBlock.positive("stemWidth", stemWidth);
      if (block == ResidualBlock.Kind.BASIC && (cardinality != 1 || baseWidth != 64)) {
        throw new IllegalArgumentException("BASIC blocks have cardinality 1 and baseWidth 64, got " + cardinality
            + " and " + baseWidth);
      }
      if (attention.rdChannels() != 0) {
        throw new IllegalArgumentException("a ResNet derives SE's width per block: use rdRatio or reduction, "
            + "not rdChannels");
      }
      if (!(dropRate >= 0 && dropRate < 1)) {
        throw new IllegalArgumentException("dropRate must be in [0, 1), got " + dropRate);
      }
    }

    private static int[] check(String name, int[] v) {
      Objects.requireNonNull(v, name);
      if (v.length != 4) {
        throw new IllegalArgumentException(name + " needs 4 entries, got " + Arrays.toString(v));
      }
      for (int x : v) {
        OsaBlock.positive(name + " entries", x);
      }
      return v.clone();
    }

    @Override
    public int[] layers() {
      return layers.clone();
    }

    @Override
    public int[] channels() {
      return channels.clone();
    }

    /** The same architecture with another attention (SE off: {@link AttentionConfig#none()}). */
    public Config withAttention(AttentionConfig a) {
      return new Config(block, layers, channels, cardinality, baseWidth, stem, stemWidth, avgDown, a, dropRate);
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Config c && block == c.block && Arrays.equals(layers, c.layers)
          && Arrays.equals(channels, c.channels) && cardinality == c.cardinality && baseWidth == c.baseWidth
          && stem == c.stem && stemWidth == c.stemWidth && avgDown == c.avgDown && attention.equals(c.attention)
          && Double.compare(dropRate, c.dropRate) == 0;
    }

    @Override
    public int hashCode() {
      return Objects.hash(block, Arrays.hashCode(layers), Arrays.hashCode(channels), cardinality, baseWidth, stem,
          stemWidth, avgDown, attention, dropRate);
    }

    @Override
    public String toString() {
      return "Config[" + block + ", layers " + Arrays.toString(layers) + ", channels " + Arrays.toString(channels)
          + ", " + cardinality + "x" + baseWidth + ", stem " + stem + " " + stemWidth + (avgDown ? ", avg down" : "")
          + ", " + attention + ", drop " + dropRate + "]";
    }
  }

  private static final int[] PLANES = {64, 128, 256, 512};
  private static final Map<String, Config> CONFIGS = new LinkedHashMap<>();

  private static Config timm(ResidualBlock.Kind block, int[] layers, int cardinality, int baseWidth, Stem stem,
      int stemWidth, boolean avgDown, AttentionConfig attn) {
    return new Config(block, layers, PLANES, cardinality, baseWidth, stem, stemWidth, avgDown, attn, 0.0);
  }

  static {
    var basic = ResidualBlock.Kind.BASIC;
    var bottleneck = ResidualBlock.Kind.BOTTLENECK;
    var se = AttentionConfig.se();
    int[] l18 = {2, 2, 2, 2};
    int[] l50 = {3, 4, 6, 3};
    int[] l101 = {3, 4, 23, 3};
    CONFIGS.put("resnet50", timm(bottleneck, l50, 1, 64, Stem.CONV7X7, 64, false, AttentionConfig.none()));
    CONFIGS.put("seresnet18", timm(basic, l18, 1, 64, Stem.CONV7X7, 64, false, se));
    CONFIGS.put("seresnet34", timm(basic, l50, 1, 64, Stem.CONV7X7, 64, false, se));
    CONFIGS.put("seresnet50", timm(bottleneck, l50, 1, 64, Stem.CONV7X7, 64, false, se));
    CONFIGS.put("seresnet101", timm(bottleneck, l101, 1, 64, Stem.CONV7X7, 64, false, se));
    CONFIGS.put("seresnet152", timm(bottleneck, new int[] {3, 8, 36, 3}, 1, 64, Stem.CONV7X7, 64, false, se));
    CONFIGS.put("seresnext26d_32x4d", timm(bottleneck, l18, 32, 4, Stem.DEEP, 32, true, se));
    CONFIGS.put("seresnext50_32x4d", timm(bottleneck, l50, 32, 4, Stem.CONV7X7, 64, false, se));
    CONFIGS.put("seresnext101_32x4d", timm(bottleneck, l101, 32, 4, Stem.CONV7X7, 64, false, se));
    CONFIGS.put("legacy_seresnet50", new Config(ResidualBlock.Kind.LEGACY_BOTTLENECK, l50, PLANES, 1, 64,
        Stem.LEGACY, 64, false, AttentionConfig.seReduction(16), 0.2));
  }

  /** The timm model names this class knows. */
  public static List<String> configNames() {
    return List.copyOf(CONFIGS.keySet());
  }

  /** timm's configuration {@code name} (e.g. "seresnet50"). */
  public static Config config(String name) {
    Config c = CONFIGS.get(Objects.requireNonNull(name, "name"));
    if (c == null) {
      throw new IllegalArgumentException("unknown ResNet '" + name + "'; known: " + CONFIGS.keySet());
    }
    return c;
  }

  private final Config config;
  private final int numClasses;

  private ResNet(Builder b, Arena arena) {
    super(NativeModule.resnet(open(arena), b.config.block(), b.config.layers, b.config.channels,
        b.config.cardinality(), b.config.baseWidth(), b.config.stem(), b.config.stemWidth(), b.config.avgDown(),
        b.config.attention(), b.inChannels, b.numClasses, b.dropRate));
    this.config = b.config;
    this.numClasses = b.numClasses;
  }

  /** timm's model {@code name} with a 1000-class head and timm's initialisation. */
  public static ResNet create(Arena arena, String name) {
    return builder(name).build(arena);
  }

  public static Builder builder(String timmName) {
    return new Builder(config(timmName));
  }

  /** A custom architecture. */
  public static Builder builder(Config config) {
    return new Builder(Objects.requireNonNull(config, "config"));
  }

  public Config config() {
    return config;
  }

  /** Classes of the head, 0 when there is none. */
  public int numClasses() {
    return numClasses;
  }

  /**
   * The outputs of {@code layer1..layer4} (strides 4, 8, 16, 32; 1, 2, 4, 8 with the small
   * stem): the feature maps a detector takes from its backbone.
   */
  public List<Tensor> forwardStages(Arena arena, Tensor x, boolean recordGrad) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(x, "x");
    return Bridge.of(this).resnetForwardStages(arena, Bridge.of(x), recordGrad).stream().map(Bridge::tensor)
        .toList();
  }

  /** The last stage's feature map (timm's forward_features), in x's arena. */
  public Tensor forwardFeatures(Tensor x) {
    Objects.requireNonNull(x, "x");
    return forwardStages(x.arena(), x, true).get(3);
  }

  /** Options of a ResNet. */
  public static final class Builder {
    private final Config config;
    private int numClasses = 1000;
    private int inChannels = 3;
    private double dropRate;

    private Builder(Config config) {
      this.config = config;
      this.dropRate = config.dropRate();
    }

    /** Classes of the classifier; 0 for no classifier (forward then gives pooled features). */
    public Builder numClasses(int n) {
      if (n < 0) {
        throw new IllegalArgumentException("numClasses must be >= 0, got " + n);
      }
      this.numClasses = n;
      return this;
    }

    public Builder inChannels(int n) {
      OsaBlock.positive("inChannels", n);
      this.inChannels = n;
      return this;
    }

    /** Dropout before the classifier (training mode only); the configuration's by default. */
    public Builder dropRate(double p) {
      if (!(p >= 0 && p < 1)) {
        throw new IllegalArgumentException("dropRate must be in [0, 1), got " + p);
      }
      this.dropRate = p;
      return this;
    }

    public ResNet build(Arena arena) {
      return new ResNet(this, arena);
    }
  }

  @Override
  public String toString() {
    return "ResNet(" + CONFIGS.entrySet().stream().filter(e -> e.getValue() == config)
        .map(Map.Entry::getKey).findFirst().orElse("custom") + ", " + numClasses + " classes)";
  }
}

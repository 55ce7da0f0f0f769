package dev.sekit.nn;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeModule;
import dev.sekit.io.SafeTensors;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;

/**
 * VoVNet backbones (V1 and V2/eSE), as timm's VovNet: a stem of three ConvNormAct (stride
 * 4), four OSA stages (strides 4, 8, 16, 32), and a classifier head (global average pool →
 * dropout → {@code head.fc}). State-dict keys and parameter counts equal timm's, so a timm
 * checkpoint loads with {@link #loadStateDict}.
 *
 * <pre>{@code
 * VoVNet net = VoVNet.create(arena, "ese_vovnet19b_dw");          // 1000 classes
 * VoVNet backbone = VoVNet.builder("ese_vovnet39b").numClasses(0).build(arena);
 * List<Tensor> maps = backbone.forwardStages(arena, images, false); // C2..C5 for detection
 * VoVNet mine = VoVNet.pretrained(arena, "ese_vovnet19b_dw", Path.of("ese_vovnet19b_dw.safetensors"), 5);
 * }</pre>
 */
public final class VoVNet extends Module {

  /**
   * The architecture of a VoVNet (timm's model_cfgs).
   *
   * @param stemChannels 3 stem widths
   * @param stageConvChannels 4 mid widths (the OSA layers)
   * @param stageOutChannels 4 stage output widths
   * @param blocksPerStage 4 block counts
   */
  public record Config(int[] stemChannels, int[] stageConvChannels, int[] stageOutChannels,
      int[] blocksPerStage, int layersPerBlock, boolean residual, boolean depthwise, Attention attention) {
    public Config {
      stemChannels = check("stemChannels", stemChannels, 3);
      stageConvChannels = check("stageConvChannels", stageConvChannels, 4);
      stageOutChannels = check("stageOutChannels", stageOutChannels, 4);
      blocksPerStage = check("blocksPerStage", blocksPerStage, 4);
      OsaBlock.positive("layersPerBlock", layersPerBlock);
      Objects.requireNonNull(attention, "attention");
    }

    private static int[] check(String name, int[] v, int n) {
      Objects.requireNonNull(v, name);
      if (v.length != n) {
        throw new IllegalArgumentException(name + " needs " + n + " entries, got " + Arrays.toString(v));
      }
      for (int x : v) {
        OsaBlock.positive(name + " entries", x);
      }
      return v.clone();
    }

    @Override
    public int[] stemChannels() {
      return stemChannels.clone();
    }

    @Override
    public int[] stageConvChannels() {
      return stageConvChannels.clone();
    }

    @Override
    public int[] stageOutChannels() {
      return stageOutChannels.clone();
    }

    @Override
    public int[] blocksPerStage() {
      return blocksPerStage.clone();
    }
  }

  private static final int[] STEM = {64, 64, 128};
  private static final int[] STEM_DW = {64, 64, 64};
  private static final int[] CONV = {128, 160, 192, 224};
  private static final int[] OUT = {256, 512, 768, 1024};
  private static final int[] CONV_SLIM = {64, 80, 96, 112};
  private static final int[] OUT_SLIM = {112, 256, 384, 512};

  private static final Map<String, Config> CONFIGS = new LinkedHashMap<>();

  static {
    CONFIGS.put("vovnet39a", new Config(STEM, CONV, OUT, new int[] {1, 1, 2, 2}, 5, false, false, Attention.NONE));
    CONFIGS.put("vovnet57a", new Config(STEM, CONV, OUT, new int[] {1, 1, 4, 3}, 5, false, false, Attention.NONE));
    CONFIGS.put("ese_vovnet19b_slim_dw", new Config(STEM_DW, CONV_SLIM, OUT_SLIM, new int[] {1, 1, 1, 1}, 3, true, true, Attention.ESE));
    CONFIGS.put("ese_vovnet19b_dw", new Config(STEM_DW, CONV, OUT, new int[] {1, 1, 1, 1}, 3, true, true, Attention.ESE));
    CONFIGS.put("ese_vovnet19b_slim", new Config(STEM, CONV_SLIM, OUT_SLIM, new int[] {1, 1, 1, 1}, 3, true, false, Attention.ESE));
    CONFIGS.put("ese_vovnet39b", new Config(STEM, CONV, OUT, new int[] {1, 1, 2, 2}, 5, true, false, Attention.ESE));
    CONFIGS.put("ese_vovnet57b", new Config(STEM, CONV, OUT, new int[] {1, 1, 4, 3}, 5, true, false, Attention.ESE));
    CONFIGS.put("ese_vovnet99b", new Config(STEM, CONV, OUT, new int[] {1, 3, 9, 3}, 5, true, false, Attention.ESE));
  }

  /** The timm model names this class knows. */
  public static List<String> configNames() {
    return List.copyOf(CONFIGS.keySet());
  }

  /** timm's configuration {@code name} (e.g. "ese_vovnet19b_dw"). */
  public static Config config(String name) {
    Config c = CONFIGS.get(Objects.requireNonNull(name, "name"));
    if (c == null) {
      throw new IllegalArgumentException("unknown VoVNet '" + name + "'; known: " + CONFIGS.keySet());
    }
    return c;
  }

  private final Config config;
  private final int numClasses;

  private VoVNet(Builder b, Arena arena) {
    super(NativeModule.vovnet(open(arena), b.config.stemChannels, b.config.stageConvChannels,
        b.config.stageOutChannels, b.config.blocksPerStage, b.config.layersPerBlock(), b.config.residual(),
        b.config.depthwise(), b.config.attention(), b.everyBlock, b.inChannels, b.numClasses, b.dropRate));
    this.config = b.config;
    this.numClasses = b.numClasses;
  }

  /** timm's model {@code name} with a 1000-class head and timm's initialisation. */
  public static VoVNet create(Arena arena, String name) {
    return builder(name).build(arena);
  }

  /**
   * timm's model {@code name} with a head for {@code numClasses} classes, its weights from the
   * timm checkpoint {@code weights} (safetensors) as {@link #loadPretrained} loads them: when the
   * checkpoint's classifier has another number of classes, the new head keeps its fresh
   * initialisation (timm's {@code create_model(name, pretrained=True, num_classes=k)}).
   *
   * @throws IllegalArgumentException when the checkpoint does not fit the architecture
   */
  public static VoVNet pretrained(Arena arena, String name, Path weights, int numClasses) throws IOException {
    Objects.requireNonNull(weights, "weights");
    VoVNet net = builder(name).numClasses(numClasses).build(arena);
    try (Arena file = Arena.ofConfined()) {
      net.loadPretrained(SafeTensors.open(file, weights).tensors());
    }
    return net;
  }

  /**
   * Loads a checkpoint of this architecture for fine-tuning: every key strictly (the same
   * keys and shapes; floating dtypes are converted), except the classifier {@code head.*}
   * when it does not fit this network's (another number of classes, or no head here): then
   * this network's head keeps its own initialisation, as after timm's
   * {@code reset_classifier(num_classes)}.
   *
   * @return the model's head keys left as they were ({@code missingKeys}) and the
   *     checkpoint's head keys skipped ({@code unexpectedKeys}); both empty when the head loaded
   * @throws IllegalArgumentException listing the keys outside the head that do not fit;
   *     nothing is loaded then
   */
  public LoadResult loadPretrained(Map<String, Tensor> stateDict) {
    Objects.requireNonNull(stateDict, "stateDict");
    Map<String, Tensor> mine = stateDict();
    boolean headFits = true;
    for (Map.Entry<String, Tensor> e : stateDict.entrySet()) {
      if (isHead(e.getKey())) {
        Tensor t = mine.get(e.getKey());
        headFits &= t != null && Arrays.equals(t.shape(), e.getValue().shape());
      }
    }
    for (String k : mine.keySet()) {
      if (isHead(k)) {
        headFits &= stateDict.containsKey(k);
      }
    }
    if (headFits) {
      loadStateDict(stateDict, true, true);
      return new LoadResult(List.of(), List.of());
    }
    Map<String, Tensor> body = new LinkedHashMap<>();
    List<String> skipped = new ArrayList<>();
    stateDict.forEach((k, t) -> {
      if (isHead(k)) {
        skipped.add(k);
      } else {
        body.put(k, t);
      }
    });
    LoadResult r = checkStateDict(body, false, true);
    TreeSet<String> missing = new TreeSet<>(r.missingKeys());
    missing.removeIf(VoVNet::isHead);
    if (!missing.isEmpty() || !r.unexpectedKeys().isEmpty()) {
      throw new IllegalArgumentException("checkpoint does not fit " + this + " outside its head:"
          + (missing.isEmpty() ? "" : " missing keys " + missing + ";")
          + (r.unexpectedKeys().isEmpty() ? "" : " unexpected keys " + r.unexpectedKeys() + ";")
          + " (is it a checkpoint of another VoVNet?)");
    }
    loadStateDict(body, false, true);
    return new LoadResult(r.missingKeys(), List.copyOf(skipped));
  }

  private static boolean isHead(String key) {
    return key.startsWith("head.");
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
   * The feature maps of the four stages (strides 4, 8, 16, 32) — what a detector such as
   * CenterMask takes from its backbone.
   */
  public List<Tensor> forwardStages(Arena arena, Tensor x, boolean recordGrad) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(x, "x");
    return Bridge.of(this).forwardStages(arena, Bridge.of(x), recordGrad).stream().map(Bridge::tensor).toList();
  }

  /** The last stage's feature map (timm's forward_features), in x's arena. */
  public Tensor forwardFeatures(Tensor x) {
    Objects.requireNonNull(x, "x");
    return forwardStages(x.arena(), x, true).get(3);
  }

  /** Options of a VoVNet. */
  public static final class Builder {
    private final Config config;
    private int numClasses = 1000;
    private int inChannels = 3;
    private double dropRate;
    private boolean everyBlock;

    private Builder(Config config) {
      this.config = config;
    }

    /** Classes of {@code head.fc}; 0 for no head (forward then gives pooled features). */
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

    /** Dropout before the classifier (training mode only). */
    public Builder dropRate(double p) {
      if (!(p >= 0 && p < 1)) {
        throw new IllegalArgumentException("dropRate must be in [0, 1), got " + p);
      }
      this.dropRate = p;
      return this;
    }

    /** Attention on every OSA block (original VoVNetV2) instead of each stage's last (timm). */
    public Builder attentionOnEveryBlock(boolean on) {
      this.everyBlock = on;
      return this;
    }

    public VoVNet build(Arena arena) {
      return new VoVNet(this, arena);
    }
  }

  @Override
  public String toString() {
    return "VoVNet(" + CONFIGS.entrySet().stream().filter(e -> e.getValue() == config)
        .map(Map.Entry::getKey).findFirst().orElse("custom") + ", " + numClasses + " classes)";
  }
}

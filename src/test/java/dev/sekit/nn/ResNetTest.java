package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.SekitException;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Structure of the ResNets: timm's parameter counts, keys and shapes, strides, initialisation, options. */
class ResNetTest {

  /** The parameter counts timm reports with a 1000-class head (spec.md gives the first two). */
  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "resnet50, 25557032", "seresnet50, 28088024", "seresnet18, 11779624", "seresnet34, 21960416",
      "seresnet101, 49326872", "seresnet152, 66821848", "seresnext26d_32x4d, 16809512",
      "seresnext50_32x4d, 27559896", "seresnext101_32x4d, 48955416", "legacy_seresnet50, 28088024"})
  void parameterCountsEqualTimms(String name, long expected) {
    try (Arena arena = Arena.ofConfined()) {
      assertEquals(expected, ResNet.create(arena, name).parameterCount(), name);
    }
  }

  /** Keys, order and shapes of every name equal the PyTorch statement's state_dict (= timm's). */
  @Test
  void stateDictKeysAndShapesEqualPyTorchs() throws Exception {
    JsonObject all = JsonParser.parseString(
        Files.readString(TestSupport.fixtures().resolve("resnet_configs.json"))).getAsJsonObject();
    assertEquals(ResNet.configNames().size(), all.size());
    for (String name : ResNet.configNames()) {
      JsonObject cfg = all.getAsJsonObject(name);
      assertEquals(ResNetFixtures.config(cfg.getAsJsonObject("config")), ResNet.config(name), name);
      try (Arena arena = Arena.ofConfined()) {
        ResNet net = ResNet.create(arena, name);
        assertEquals(cfg.get("param_count").getAsLong(), net.parameterCount(), name);
        List<String> expected = new ArrayList<>();
        for (JsonElement e : cfg.getAsJsonArray("state_dict")) {
          expected.add(e.getAsJsonArray().get(0).getAsString() + " " + e.getAsJsonArray().get(1));
        }
        List<String> actual = new ArrayList<>();
        net.stateDict().forEach((k, t) -> actual.add(k + " " + Arrays.toString(t.shape()).replace(" ", "")));
        assertEquals(expected, actual, name);
      }
    }
  }

  @Test
  void stagesHaveStrides4To32() {
    try (Arena arena = Arena.ofConfined()) {
      ResNet net = ResNet.builder("seresnext26d_32x4d").numClasses(0).build(arena);
      net.eval();
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 3, 64, 96);
      List<Tensor> maps = net.forwardStages(arena, x, false);
      int[] channels = {256, 512, 1024, 2048};
      for (int i = 0; i < 4; i++) {
        int stride = 4 << i;
        assertArrayEquals(new long[] {1, channels[i], 64 / stride, 96 / stride}, maps.get(i).shape(), "stage " + i);
      }
      assertArrayEquals(new long[] {1, 2048}, net.forward(arena, x, false).shape(), "no head: pooled features");
      assertArrayEquals(new long[] {1, 2048, 2, 3}, net.forwardFeatures(x).shape());

      ResNet.Config small = new ResNet.Config(ResidualBlock.Kind.BASIC, new int[] {1, 1, 1, 1},
          new int[] {8, 16, 24, 32}, 1, 64, ResNet.Stem.SMALL, 8, false, AttentionConfig.se(), 0.0);
      ResNet tiny = ResNet.builder(small).inChannels(1).numClasses(10).build(arena);
      List<Tensor> tm = tiny.forwardStages(arena, Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 1, 28, 28), false);
      assertArrayEquals(new long[] {2, 8, 28, 28}, tm.get(0).shape());
      assertArrayEquals(new long[] {2, 32, 4, 4}, tm.get(3).shape());
    }
  }

  @Test
  void timmInitialisation() {
    try (Arena arena = Arena.ofConfined()) {
      ResNet net = ResNet.create(arena, "seresnet50");
      for (float v : net.stateDict().get("layer1.0.bn3.weight").toFloatArray()) {
        assertEquals(0f, v, "zero_init_last");
      }
      for (float v : net.stateDict().get("layer1.0.bn2.weight").toFloatArray()) {
        assertEquals(1f, v);
      }
      float[] w = net.stateDict().get("layer4.2.conv3.weight").toFloatArray();
      double var = 0;
      for (float v : w) {
        var += v * v;
      }
      var /= w.length;
      double expected = 2.0 / 2048; // Kaiming normal, fan_out = 2048 * 1 * 1
      assertEquals(expected, var, expected * 0.05, "variance of a 1x1 conv's weights");
      ResNet legacy = ResNet.create(arena, "legacy_seresnet50");
      for (float v : legacy.stateDict().get("layer1.0.bn3.weight").toFloatArray()) {
        assertEquals(1f, v, "senet.py does not zero the last BN");
      }
      assertEquals(0.2, legacy.config().dropRate(), "senet.py's default dropout");
      assertArrayEquals(new long[] {16, 256, 1, 1}, legacy.stateDict().get("layer1.0.se_module.fc1.weight").shape());
      assertArrayEquals(new long[] {16, 256, 1, 1}, net.stateDict().get("layer1.0.se.fc1.weight").shape());
    }
  }

  /** The fused SE kernels (default) and timm's op composition agree; channels-last too. */
  @Test
  void fusedCompositionAndChannelsLastAgree() {
    ResNet.Config cfg = new ResNet.Config(ResidualBlock.Kind.BOTTLENECK, new int[] {1, 1, 1, 1},
        new int[] {8, 16, 16, 32}, 4, 16, ResNet.Stem.DEEP, 8, true, AttentionConfig.se(), 0.0);
    try (Arena arena = Arena.ofConfined()) {
      ResNet net = ResNet.builder(cfg).numClasses(5).build(arena);
      net.to(DType.FLOAT64).eval();
      Tensor x = Tensor.randn(arena, DType.FLOAT64, Device.CPU, 2, 3, 45, 39);
      Tensor fused = net.forward(arena, x, false);
      net.useFusedKernels(false);
      Tensor composed = net.forward(arena, x, false);
      assertTrue(TestSupport.relativeError(composed, fused) < 1e-12);
      net.useFusedKernels(true).to(MemoryFormat.CHANNELS_LAST);
      Tensor cl = net.forward(arena, x.contiguous(arena, MemoryFormat.CHANNELS_LAST), false);
      assertTrue(TestSupport.relativeError(composed, cl) < 1e-12);
    }
  }

  @Test
  void blocksNameTheirParametersAsTimm() {
    try (Arena arena = Arena.ofConfined()) {
      ResidualBlock b = ResidualBlock.builder(ResidualBlock.Kind.BOTTLENECK, 64, 64).stride(2).cardinality(32)
          .baseWidth(4).shortcut(ResidualBlock.Shortcut.AVG_POOL_CONV).build(arena);
      assertEquals(List.of("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
          "bn1.num_batches_tracked", "conv2.weight"), new ArrayList<>(b.stateDict().keySet()).subList(0, 7));
      assertArrayEquals(new long[] {128, 4, 3, 3}, b.stateDict().get("conv2.weight").shape(), "32 groups of 4");
      assertTrue(b.stateDict().containsKey("downsample.1.weight"));
      assertTrue(b.stateDict().containsKey("downsample.2.running_var"));
      assertEquals(256, b.outChannels());
      ResidualBlock pre = ResidualBlock.builder(ResidualBlock.Kind.PRE_ACTIVATION, 32, 32)
          .attention(AttentionConfig.seReduction(16).withBias(false)).build(arena);
      assertEquals(List.of("norm1.weight", "norm1.bias", "norm1.running_mean", "norm1.running_var",
          "norm1.num_batches_tracked", "conv1.weight", "norm2.weight", "norm2.bias", "norm2.running_mean",
          "norm2.running_var", "norm2.num_batches_tracked", "conv2.weight", "se.fc1.weight", "se.fc2.weight"),
          List.copyOf(pre.stateDict().keySet()));
      assertArrayEquals(new long[] {2, 32, 1, 1}, pre.stateDict().get("se.fc1.weight").shape());
      ResidualBlock ese = ResidualBlock.builder(ResidualBlock.Kind.BASIC, 16, 16).attention(AttentionConfig.ese())
          .build(arena);
      assertTrue(ese.stateDict().containsKey("se.fc.weight"));
      ResidualBlock plain = ResidualBlock.builder(ResidualBlock.Kind.BASIC, 16, 16).attention(AttentionConfig.none())
          .build(arena);
      assertFalse(plain.stateDict().keySet().stream().anyMatch(k -> k.startsWith("se.")));
    }
  }

  @Test
  void badConfigurationsAndInputs() {
    assertThrows(IllegalArgumentException.class, () -> ResNet.config("resnet51"));
    assertThrows(IllegalArgumentException.class, () -> ResNet.config("seresnet50").withAttention(
        AttentionConfig.se().withRdChannels(8)));
    assertThrows(IllegalArgumentException.class, () -> new ResNet.Config(ResidualBlock.Kind.BASIC,
        new int[] {1, 1, 1}, new int[] {8, 8, 8, 8}, 1, 64, ResNet.Stem.SMALL, 8, false, AttentionConfig.se(), 0));
    assertThrows(IllegalArgumentException.class, () -> new ResNet.Config(ResidualBlock.Kind.BASIC,
        new int[] {1, 1, 1, 1}, new int[] {8, 8, 8, 8}, 32, 4, ResNet.Stem.SMALL, 8, false, AttentionConfig.se(), 0));
    assertThrows(IllegalArgumentException.class, () -> new ResNet.Config(ResidualBlock.Kind.PRE_ACTIVATION,
        new int[] {1, 1, 1, 1}, new int[] {8, 8, 8, 8}, 1, 64, ResNet.Stem.SMALL, 8, false, AttentionConfig.se(), 0));
    assertThrows(IllegalArgumentException.class, () -> ResNet.builder("seresnet18").numClasses(-1));
    assertThrows(IllegalArgumentException.class, () -> AttentionConfig.seReduction(0));
    try (Arena arena = Arena.ofConfined()) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> ResidualBlock.builder(ResidualBlock.Kind.BASIC, 16, 32).stride(2).build(arena));
      assertTrue(e.getMessage().contains("identity shortcut needs stride 1"), e.getMessage());
      assertThrows(IllegalArgumentException.class,
          () -> ResidualBlock.builder(ResidualBlock.Kind.PRE_ACTIVATION, 16, 16).stride(2)
              .shortcut(ResidualBlock.Shortcut.CONV).build(arena));
      assertThrows(IllegalArgumentException.class,
          () -> ResidualBlock.builder(ResidualBlock.Kind.BASIC, 16, 16).cardinality(2).build(arena));
      assertThrows(IllegalArgumentException.class, () -> ResidualBlock.builder(ResidualBlock.Kind.BASIC, 16, 16)
          .attention(AttentionConfig.seReduction(32)).build(arena));
      // a network whose first stage is narrower than the reduction: the library refuses it
      ResNet.Config thin = new ResNet.Config(ResidualBlock.Kind.BASIC, new int[] {1, 1, 1, 1},
          new int[] {8, 16, 32, 64}, 1, 64, ResNet.Stem.SMALL, 8, false, AttentionConfig.seReduction(16), 0);
      SekitException se = assertThrows(SekitException.class, () -> ResNet.builder(thin).build(arena));
      assertTrue(se.getMessage().contains("has no channels left"), se.getMessage());

      ResNet net = ResNet.builder("seresnet18").numClasses(5).build(arena);
      Tensor gray = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 1, 32, 32);
      SekitException e2 = assertThrows(SekitException.class, () -> net.forward(gray));
      assertTrue(e2.getMessage().contains("ResNet has 3 channels but the input has 1"), e2.getMessage());
      ResidualBlock block = ResidualBlock.builder(ResidualBlock.Kind.BASIC, 8, 8).build(arena);
      assertThrows(SekitException.class,
          () -> block.forward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 4, 5, 5)));
    }
  }
}

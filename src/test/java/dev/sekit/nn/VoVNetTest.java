package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.SekitException;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Structure of the VoVNets: timm's parameter counts, keys and shapes, strides, options. */
class VoVNetTest {

  /** timm's parameter counts with a 1000-class head (spec.md). */
  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "vovnet39a, 22600296", "vovnet57a, 36640296", "ese_vovnet19b_slim_dw, 1897752",
      "ese_vovnet19b_dw, 6543080", "ese_vovnet19b_slim, 3166136", "ese_vovnet39b, 24568936",
      "ese_vovnet57b, 38608936", "ese_vovnet99b, 63199272"})
  void parameterCountsEqualTimms(String name, long expected) {
    try (Arena arena = Arena.ofConfined()) {
      assertEquals(expected, VoVNet.create(arena, name).parameterCount(), name);
    }
  }

  /** Keys, order and shapes of every configuration equal the PyTorch statement's state_dict. */
  @Test
  void stateDictKeysAndShapesEqualPyTorchs() throws Exception {
    JsonObject all = JsonParser.parseString(
        Files.readString(TestSupport.fixtures().resolve("vovnet_configs.json"))).getAsJsonObject();
    assertEquals(VoVNet.configNames().size(), all.size());
    for (String name : VoVNet.configNames()) {
      JsonObject cfg = all.getAsJsonObject(name);
      try (Arena arena = Arena.ofConfined()) {
        VoVNet net = VoVNet.create(arena, name);
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
      VoVNet net = VoVNet.builder("ese_vovnet19b_slim_dw").numClasses(0).build(arena);
      net.eval();
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 3, 96, 128);
      List<Tensor> maps = net.forwardStages(arena, x, false);
      assertEquals(4, maps.size());
      int[] channels = {112, 256, 384, 512};
      for (int i = 0; i < 4; i++) {
        int stride = 4 << i;
        assertArrayEquals(new long[] {2, channels[i], (96 + stride - 1) / stride, (128 + stride - 1) / stride},
            maps.get(i).shape(), "stage " + i);
      }
      assertArrayEquals(new long[] {2, 512}, net.forward(arena, x, false).shape(), "no head: pooled features");
      assertArrayEquals(new long[] {2, 512, 3, 4}, net.forwardFeatures(x).shape());
    }
  }

  @Test
  void customConfigAndAttentionOnEveryBlock() {
    VoVNet.Config cfg = new VoVNet.Config(new int[] {16, 16, 32}, new int[] {16, 16, 16, 16},
        new int[] {32, 48, 64, 80}, new int[] {1, 1, 2, 2}, 2, true, false, Attention.ESE);
    try (Arena arena = Arena.ofConfined()) {
      VoVNet last = VoVNet.builder(cfg).numClasses(10).build(arena);
      VoVNet every = VoVNet.builder(cfg).numClasses(10).attentionOnEveryBlock(true).build(arena);
      // eSE on the first block of stages 2 and 3 too: (64*64+64) + (80*80+80)
      assertEquals(last.parameterCount() + 64 * 64 + 64 + 80 * 80 + 80, every.parameterCount());
      assertTrue(every.stateDict().containsKey("stages.2.blocks.0.attn.fc.weight"));
      assertTrue(!last.stateDict().containsKey("stages.2.blocks.0.attn.fc.weight"));
      VoVNet se = VoVNet.builder(new VoVNet.Config(cfg.stemChannels(), cfg.stageConvChannels(),
          cfg.stageOutChannels(), cfg.blocksPerStage(), 2, true, false, Attention.SE)).build(arena);
      assertArrayEquals(new long[] {8, 80, 1, 1}, se.stateDict().get("stages.3.blocks.1.attn.fc1.weight").shape());
      Tensor y = last.forward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 3, 32, 32));
      assertArrayEquals(new long[] {2, 10}, y.shape());
    }
  }

  @Test
  void timmInitialisation() {
    try (Arena arena = Arena.ofConfined()) {
      VoVNet net = VoVNet.create(arena, "ese_vovnet19b_slim_dw");
      float[] w = net.stateDict().get("stages.3.blocks.0.conv_concat.conv.weight").toFloatArray();
      double var = 0;
      for (float v : w) {
        var += v * v;
      }
      var /= w.length;
      double expected = 2.0 / 512; // Kaiming normal, fan_out = 512 * 1 * 1
      assertEquals(expected, var, expected * 0.1, "variance of a 1x1 conv's weights");
      for (float b : net.stateDict().get("head.fc.bias").toFloatArray()) {
        assertEquals(0f, b);
      }
    }
  }

  @Test
  void badConfigurationsAndInputs() {
    assertThrows(IllegalArgumentException.class, () -> VoVNet.config("resnet50"));
    assertThrows(IllegalArgumentException.class, () -> new VoVNet.Config(new int[] {1, 2}, new int[4],
        new int[4], new int[4], 1, false, false, Attention.NONE));
    assertThrows(IllegalArgumentException.class, () -> VoVNet.builder("vovnet39a").numClasses(-1));
    assertThrows(IllegalArgumentException.class, () -> OsaBlock.builder(16, 8, 24, 2).residual(true).build(null));
    try (Arena arena = Arena.ofConfined()) {
      VoVNet net = VoVNet.builder("ese_vovnet19b_slim_dw").numClasses(5).build(arena);
      Tensor gray = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 1, 32, 32);
      SekitException e = assertThrows(SekitException.class, () -> net.forward(gray));
      assertTrue(e.getMessage().contains("VoVNet has 3 channels but the input has 1"), e.getMessage());
      OsaBlock block = OsaBlock.builder(8, 8, 8, 2).build(arena);
      assertThrows(SekitException.class, () -> block.forward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 4, 5, 5)));
    }
  }

  @Test
  void dtypeConversionOnLoadIsOnRequest() {
    try (Arena arena = Arena.ofConfined()) {
      OsaBlock a = OsaBlock.builder(8, 4, 8, 2).attention(Attention.ESE).build(arena);
      OsaBlock b = OsaBlock.builder(8, 4, 8, 2).attention(Attention.ESE).build(arena);
      Map<String, Tensor> half = new HashMap<>();
      a.stateDict().forEach((k, t) -> half.put(k, t.dtype().isFloatingPoint() ? t.to(DType.FLOAT16) : t));
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.loadStateDict(half));
      assertTrue(e.getMessage().contains("conv_concat.bn.weight: expected float32, got float16"), e.getMessage());
      b.loadStateDict(half, true, true);
      float[] w16 = half.get("attn.fc.weight").to(DType.FLOAT32).toFloatArray();
      assertArrayEquals(w16, b.stateDict().get("attn.fc.weight").toFloatArray());
    }
  }
}

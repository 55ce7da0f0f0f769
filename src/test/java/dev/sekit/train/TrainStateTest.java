package dev.sekit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.nn.Attention;
import dev.sekit.nn.Module;
import dev.sekit.nn.SmallVoVNet;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a trainer and an optimizer accept as state: a resume that refuses a checkpoint changes
 * nothing, freezing belongs to the optimizer's groups, optimizer state keeps its dtype, and
 * mistakes in the groups are named.
 */
class TrainStateTest {
  @TempDir Path dir;

  private static Map<String, float[]> snapshot(Module m, Optimizer o) {
    Map<String, float[]> r = new LinkedHashMap<>();
    m.stateDict().forEach((k, t) -> r.put("model." + k, floats(t)));
    o.stateDict().forEach((k, t) -> r.put("optim." + k, floats(t)));
    return r;
  }

  private static float[] floats(Tensor t) {
    if (t.dtype() == DType.INT64) {
      long[] l = t.toLongArray();
      float[] f = new float[l.length];
      for (int i = 0; i < l.length; i++) {
        f[i] = l[i];
      }
      return f;
    }
    return t.toFloatArray();
  }

  private static InMemoryDataset data(Arena arena, int n) {
    MemorySegment x = arena.allocate(ValueLayout.JAVA_FLOAT, (long) n * 28 * 28);
    java.util.Random rnd = new java.util.Random(1);
    for (long i = 0; i < (long) n * 28 * 28; i++) {
      x.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rnd.nextGaussian());
    }
    long[] y = new long[n];
    for (int i = 0; i < n; i++) {
      y[i] = i % 10;
    }
    return InMemoryDataset.of(x, y, 10, 1, 28, 28);
  }

  /**
   * A checkpoint whose tensors fit but whose metadata is malformed is refused before anything
   * is loaded: the model's and the optimizer's state stay as they were, and a good checkpoint
   * still resumes afterwards.
   */
  @Test
  void resumeWithMalformedMetadataChangesNothing() throws Exception {
    Trainer.Options opts = Trainer.Options.builder().epochs(1).batchSize(8).seed(7).build();
    try (Arena arena = Arena.ofConfined(); InMemoryDataset train = data(arena, 16)) {
      Sekit.manualSeed(1);
      Module model = SmallVoVNet.build(arena, Attention.ESE, 1, 10);
      Trainer t = new Trainer(arena, model, train, null, opts);
      // Another model's state (other random weights, an optimizer that has stepped): what a
      // resume would load.
      Sekit.manualSeed(2);
      Module other = SmallVoVNet.build(arena, Attention.ESE, 1, 10);
      Trainer ot = new Trainer(arena, other, train, null, opts);
      ot.fit(null, null, null);
      Map<String, float[]> before = snapshot(model, t.optimizer());
      String goodHistory = "[]";
      List<Map<String, String>> bad = List.of(
          Map.of("seed", "7", "global_step", "two", "history", goodHistory),
          Map.of("seed", "7", "global_step", "-3", "history", goodHistory),
          Map.of("seed", "7", "global_step", "2", "history", "not json"),
          Map.of("seed", "7", "global_step", "2", "history", "null"),
          Map.of("seed", "7", "global_step", "2", "history", "[null]"),
          Map.of("seed", "7", "global_step", "2", "history", "[{\"epoch\": \"x\"}]"),
          Map.of("seed", "seven", "global_step", "2", "history", goodHistory));
      int i = 0;
      for (Map<String, String> meta : bad) {
        Path ckpt = dir.resolve("bad" + i++ + ".safetensors");
        Checkpoint.save(ckpt, other, ot.optimizer(), meta);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.resume(ckpt), meta.toString());
        assertTrue(e.getMessage().contains("damaged checkpoint"), e.getMessage());
        Map<String, float[]> after = snapshot(model, t.optimizer());
        before.forEach((k, v) -> assertArrayEquals(v, after.get(k), k + " changed by a refused resume of " + meta));
      }
      Path good = dir.resolve("good.safetensors");
      Checkpoint.save(good, other, ot.optimizer(), Map.of("seed", "7", "global_step", "2", "history", goodHistory));
      t.resume(good);
      Map<String, float[]> loaded = snapshot(model, t.optimizer());
      snapshot(other, ot.optimizer()).forEach((k, v) -> assertArrayEquals(v, loaded.get(k), k));
      assertTrue(t.fit(null, null, null).completed());
    }
  }

  /** An int64 momentum buffer of the right shape is refused, not truncated into float32. */
  @Test
  void optimizerStateOfAnotherDtypeIsRefused() {
    try (Arena arena = Arena.ofConfined()) {
      VoVNet model = ParamGroupsTest.tinyVoVNet(arena, 3, 5);
      Optimizer opt = Optimizer.sgd(model, 0.1).build(arena);
      Map<String, Tensor> saved = new LinkedHashMap<>(opt.stateDict());
      String key = saved.keySet().stream().filter(k -> k.endsWith(".momentum_buffer")).findFirst().orElseThrow();
      long[] shape = saved.get(key).shape();
      long n = 1;
      for (long s : shape) {
        n *= s;
      }
      long[] ones = new long[(int) n];
      java.util.Arrays.fill(ones, 3);
      saved.put(key, Tensor.copyOf(arena, ones, shape));
      float[] before = opt.stateDict().get(key).toFloatArray();
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.loadStateDict(saved));
      assertTrue(e.getMessage().contains(key) && e.getMessage().contains("dtype"), e.getMessage());
      assertArrayEquals(before, opt.stateDict().get(key).toFloatArray(), "nothing loaded");
    }
  }

  /**
   * Freezing is the groups' business: an optimizer built later over the same module without
   * freezing trains the parameters an earlier one froze (as with torch.optim, where freezing
   * is not a property an optimizer leaves behind); a parameter the user froze by hand stays
   * frozen.
   */
  @Test
  void aLaterOptimizerWithoutFreezingTrainsEveryParameter() {
    try (Arena arena = Arena.ofConfined()) {
      VoVNet model = ParamGroupsTest.tinyVoVNet(arena, 3, 5);
      Tensor byHand = model.namedParameters().get("head.fc.bias");
      byHand.requiresGrad(false);
      Optimizer.sgd(model, 0.1).paramGroups(ParamGroups.builder().freeze("stem").build()).build(arena);
      assertFalse(model.namedParameters().get("stem.0.conv.weight").requiresGrad(), "frozen by the groups");
      Optimizer later = Optimizer.sgd(model, 0.1).momentum(0).build(arena);
      Tensor w = model.namedParameters().get("stem.0.conv.weight");
      assertTrue(w.requiresGrad(), "an optimizer without frozen groups must train stem.0.conv.weight");
      assertFalse(byHand.requiresGrad(), "frozen by hand: left alone");
      float[] w0 = w.toFloatArray();
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 3, 32, 32);
      model.train();
      Tensor loss = Losses.crossEntropy(model.forward(arena, x, true), Tensor.copyOf(arena, new long[] {1, 2}, 2), 0.0);
      loss.backward();
      later.step();
      assertFalse(java.util.Arrays.equals(w0, w.toFloatArray()), "stem.0.conv.weight was not trained");
      // Freezing again through the groups still works.
      Optimizer.sgd(model, 0.1).paramGroups(ParamGroups.builder().freeze("stem").build()).build(arena);
      assertFalse(w.requiresGrad());
    }
  }

  @Test
  void nullPrefixesAreNamed() {
    NullPointerException e = assertThrows(NullPointerException.class,
        () -> ParamGroups.builder().freeze("stem", null));
    assertTrue(e.getMessage() != null && e.getMessage().contains("prefix 2 of 2 is null"), String.valueOf(e.getMessage()));
    NullPointerException g = assertThrows(NullPointerException.class,
        () -> ParamGroups.builder().backbone(0.1, (String) null));
    assertTrue(g.getMessage() != null && g.getMessage().contains("backbone"), String.valueOf(g.getMessage()));
    NullPointerException a = assertThrows(NullPointerException.class,
        () -> ParamGroups.builder().group(0.5, (String[]) null));
    assertTrue(a.getMessage() != null && a.getMessage().contains("group"), String.valueOf(a.getMessage()));
    assertEquals(List.of("stem"), ParamGroups.builder().freeze("stem").build().frozen());
  }
}

package dev.sekit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.sekit.DType;
import dev.sekit.SekitException;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Attention;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Parameter groups against torch.optim with param_groups (frozen parameters, a learning rate
 * and weight decay per group, a schedule moving every group), their state through a
 * checkpoint, and top-k counts against timm's accuracy().
 */
class ParamGroupsTest {
  @TempDir Path dir;

  private static final Map<String, Double> WORST = new TreeMap<>();

  @AfterAll
  static void report() {
    TestSupport.printWorst(WORST);
  }

  static Stream<String> groupCases() throws Exception {
    List<String> r = new ArrayList<>();
    JsonParser.parseString(Files.readString(TestSupport.fixtures().resolve("manifest.json")))
        .getAsJsonObject().getAsJsonArray("groups").forEach(e -> r.add(e.getAsString()));
    return r.stream().filter(n -> n.startsWith("groups_"));
  }

  /** The fixtures' tiny VoVNet (make_fixtures.py TINY_VOVNET). */
  static VoVNet tinyVoVNet(Arena arena, int inChannels, int classes) {
    VoVNet.Config c = new VoVNet.Config(new int[] {8, 8, 16}, new int[] {8, 8, 8, 8}, new int[] {16, 16, 24, 24},
        new int[] {1, 1, 1, 1}, 2, true, true, Attention.ESE);
    return VoVNet.builder(c).inChannels(inChannels).numClasses(classes).build(arena);
  }

  /** The groups as the fixture states them (sekit's rules, written out by the Python side). */
  static ParamGroups groups(JsonObject spec) {
    ParamGroups.Builder b = ParamGroups.builder().freeze(strings(spec.getAsJsonArray("frozen")));
    for (JsonElement e : spec.getAsJsonArray("groups")) {
      JsonObject g = e.getAsJsonObject();
      b.add(new ParamGroups.Group(List.of(strings(g.getAsJsonArray("prefixes"))), g.get("complement").getAsBoolean(),
          g.get("lr_scale").getAsDouble(), g.has("weight_decay") ? g.get("weight_decay").getAsDouble() : null));
    }
    return b.build();
  }

  private static String[] strings(JsonArray a) {
    String[] r = new String[a.size()];
    for (int i = 0; i < r.length; i++) {
      r[i] = a.get(i).getAsString();
    }
    return r;
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("groupCases")
  void stepsMatchTorchOptimWithParamGroups(String name) throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors f = SafeTensors.open(arena, TestSupport.fixtures().resolve(name + ".safetensors"));
      Map<String, String> m = f.metadata();
      DType dtype = m.get("dtype").equals("f64") ? DType.FLOAT64 : DType.FLOAT32;
      VoVNet model = tinyVoVNet(arena, 3, Integer.parseInt(m.get("num_classes")));
      model.to(dtype);
      List<String> names = new ArrayList<>(model.namedParameters().keySet());
      List<String> torchNames = new ArrayList<>();
      JsonParser.parseString(m.get("names")).getAsJsonArray().forEach(e -> torchNames.add(e.getAsString()));
      assertEquals(torchNames, names, "parameter names and order");
      model.namedParameters().forEach((k, p) -> p.copyFrom(f.tensor("param0." + k)));

      ParamGroups groups = groups(JsonParser.parseString(m.get("groups")).getAsJsonObject());
      int[] expectedGroups = new int[names.size()];
      JsonArray go = JsonParser.parseString(m.get("group_of")).getAsJsonArray();
      for (int i = 0; i < expectedGroups.length; i++) {
        expectedGroups[i] = go.get(i).getAsInt();
      }
      assertArrayEquals(expectedGroups, groups.assign(names), "group of each parameter");

      double lr = Double.parseDouble(m.get("lr"));
      double wd = Double.parseDouble(m.get("weight_decay"));
      Optimizer opt;
      if (m.get("optimizer").equals("sgd")) {
        opt = Optimizer.sgd(model, lr).momentum(Double.parseDouble(m.get("momentum")))
            .nesterov(Boolean.parseBoolean(m.get("nesterov"))).weightDecay(wd).paramGroups(groups).build(arena);
      } else {
        JsonArray betas = JsonParser.parseString(m.get("betas")).getAsJsonArray();
        opt = Optimizer.adamW(model, lr).betas(betas.get(0).getAsDouble(), betas.get(1).getAsDouble())
            .eps(Double.parseDouble(m.get("eps"))).weightDecay(wd).paramGroups(groups).build(arena);
      }
      assertEquals(groups.groups().size() + 1, opt.groupCount());
      Map<String, Tensor> params = model.namedParameters();
      for (int i = 0; i < names.size(); i++) {
        boolean frozen = expectedGroups[i] < 0;
        String pname = names.get(i);
        assertEquals(!frozen, params.get(pname).requiresGrad(), pname + " requires grad");
        assertEquals(!frozen, opt.stateDict().keySet().stream().anyMatch(k -> k.startsWith(pname + ".")),
            pname + " has optimizer state");
      }

      JsonArray factors = JsonParser.parseString(m.get("lr_factors")).getAsJsonArray();
      int steps = Integer.parseInt(m.get("steps"));
      double tol = dtype == DType.FLOAT64 ? 1e-13 : 2e-6;
      for (int s = 1; s <= steps; s++) {
        double base = lr * factors.get(s - 1).getAsDouble();
        opt.setLearningRate(base);
        assertEquals(base, opt.learningRate(), 0);
        for (int g = 0; g < groups.groups().size(); g++) {
          assertEquals(base * groups.groups().get(g).lrScale(), opt.learningRate(g + 1), 0);
        }
        for (Map.Entry<String, Tensor> p : params.entrySet()) {
          p.getValue().setGrad(f.tensor("grad" + s + "." + p.getKey())); // frozen ones too
        }
        opt.step();
        for (int i = 0; i < names.size(); i++) {
          String k = names.get(i);
          Tensor expected = f.tensor("param" + s + "." + k);
          if (expectedGroups[i] < 0) {
            assertEquals(0.0, TestSupport.relativeError(f.tensor("param0." + k), params.get(k)), k + " is frozen");
            assertEquals(0.0, TestSupport.relativeError(expected, params.get(k)), k + " as PyTorch left it");
          } else {
            double err = TestSupport.relativeError(expected, params.get(k));
            WORST.merge(name.replaceAll("_f(32|64)$", "") + " " + dtype, err, Math::max);
            assertTrue(err <= tol, name + " step " + s + " " + k + ": relative error " + err);
          }
        }
      }
      assertEquals(steps, opt.steps());
    }
  }

  @Test
  void topKCountsMatchTimmAccuracy() throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors f = SafeTensors.open(arena, TestSupport.fixtures().resolve("topk_ties.safetensors"));
      int cases = Integer.parseInt(f.metadata().get("cases"));
      for (int j = 0; j < cases; j++) {
        long[] ks = f.tensor("ks" + j).toLongArray();
        int[] k = new int[ks.length];
        for (int i = 0; i < k.length; i++) {
          k[i] = (int) ks[i];
        }
        long[] expected = f.tensor("counts" + j).toLongArray();
        assertArrayEquals(expected, Losses.countCorrectTopK(f.tensor("logits"), f.tensor("targets"), k),
            "top-k counts for k = " + java.util.Arrays.toString(k));
      }
      assertThrows(IllegalArgumentException.class, () -> Losses.countCorrectTopK(f.tensor("logits"),
          f.tensor("targets"), 0));
    }
  }

  /** Gradients for every parameter, the same for a given (seed, step). */
  private static void fakeGrads(Arena arena, VoVNet model, int step) {
    Random r = new Random(1000 + step);
    for (Tensor p : model.namedParameters().values()) {
      float[] g = new float[Math.toIntExact(p.numel())];
      for (int i = 0; i < g.length; i++) {
        g[i] = (float) r.nextGaussian();
      }
      p.setGrad(Tensor.copyOf(arena, g, p.shape()));
    }
  }

  private static Map<String, float[]> snapshot(Map<String, Tensor> state) {
    Map<String, float[]> r = new LinkedHashMap<>();
    state.forEach((k, t) -> r.put(k, t.dtype() == DType.INT64 ? new float[] {t.toLongArray()[0]} : t.toFloatArray()));
    return r;
  }

  private static final ParamGroups RESUME_GROUPS = ParamGroups.builder().freeze("stem", "stages.0")
      .backbone(0.1, "head").group(1.0, 0.0, "head.fc.bias").build();

  private Map<String, float[]> run(Path ckpt, int from, int to, boolean adamw)
      throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      dev.sekit.Sekit.manualSeed(4);
      VoVNet model = tinyVoVNet(arena, 3, 5);
      Optimizer opt = adamw
          ? Optimizer.adamW(model, 0.01).paramGroups(RESUME_GROUPS).build(arena)
          : Optimizer.sgd(model, 0.1).nesterov(true).weightDecay(1e-3).paramGroups(RESUME_GROUPS).build(arena);
      if (from > 0) {
        Checkpoint.load(ckpt, model, opt);
      }
      for (int s = from; s < to; s++) {
        fakeGrads(arena, model, s);
        opt.setLearningRate(0.05 / (1 + s));
        opt.step();
      }
      if (to == 2) {
        Checkpoint.save(ckpt, model, opt, Map.of());
      }
      Map<String, float[]> r = snapshot(model.stateDict());
      opt.stateDict().forEach((k, t) -> r.put("optim." + k, snapshot(Map.of(k, t)).get(k)));
      return r;
    }
  }

  @Test
  void groupStateRoundTripsThroughACheckpointBitForBit() throws Exception {
    for (boolean adamw : new boolean[] {false, true}) {
      Path ckpt = dir.resolve("groups-" + adamw + ".safetensors");
      Map<String, float[]> straight = run(dir.resolve("unused-" + adamw + ".safetensors"), 0, 4, adamw);
      run(ckpt, 0, 2, adamw); // writes the checkpoint after 2 steps
      Map<String, float[]> resumed = run(ckpt, 2, 4, adamw);
      assertEquals(straight.keySet(), resumed.keySet());
      straight.forEach((k, v) -> assertArrayEquals(v, resumed.get(k), k + " differs after resuming"));
      assertFalse(straight.containsKey("optim.stem.0.conv.weight.exp_avg"), "frozen parameters have no state");
      assertFalse(straight.containsKey("optim.stem.0.conv.weight.momentum_buffer"), "frozen parameters have no state");
    }
    // A checkpoint of other groups (another frozen set) does not fit, and says so.
    try (Arena arena = Arena.ofConfined()) {
      VoVNet model = tinyVoVNet(arena, 3, 5);
      Optimizer other = Optimizer.adamW(model, 0.01).paramGroups(ParamGroups.builder().freeze("stem").build())
          .build(arena);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> Checkpoint.load(dir.resolve("groups-true.safetensors"), model, other));
      assertTrue(e.getMessage().contains("optimizer state does not fit"), e.getMessage());
    }
  }

  @Test
  void mistakesAreNamed() {
    try (Arena arena = Arena.ofConfined()) {
      VoVNet model = tinyVoVNet(arena, 3, 5);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Optimizer.sgd(model, 0.1)
          .paramGroups(ParamGroups.builder().freeze("stage.0").build()).build(arena));
      assertTrue(e.getMessage().contains("no parameter of the model is under [stage.0]"), e.getMessage());
      assertTrue(model.namedParameters().values().stream().allMatch(Tensor::requiresGrad), "nothing frozen after a refusal");
      SekitException all = assertThrows(SekitException.class, () -> Optimizer.sgd(model, 0.1)
          .paramGroups(ParamGroups.builder().freeze("stem", "stages", "head").build()).build(arena));
      assertTrue(all.getMessage().contains("every parameter is frozen"), all.getMessage());
      assertThrows(IllegalArgumentException.class, () -> ParamGroups.builder().group(-1, "head"));
      assertThrows(IllegalArgumentException.class, () -> ParamGroups.builder().freeze(""));
      // "stages.0" is a whole component: it does not reach stages.01 (or stages.0x)
      ParamGroups g = ParamGroups.builder().freeze("stages.0").build();
      assertTrue(g.isFrozen("stages.0.blocks.0.conv_concat.conv.weight"));
      assertFalse(g.isFrozen("stages.01.blocks.0.conv_concat.conv.weight"));
      Optimizer sgd = Optimizer.sgd(model, 0.1).paramGroups(ParamGroups.builder().backbone(0.1, "head").build())
          .build(arena);
      sgd.setLearningRate(0.2);
      assertEquals(0.2, sgd.learningRate(0), 0);
      assertEquals(0.2 * 0.1, sgd.learningRate(1), 0);
      assertThrows(SekitException.class, () -> sgd.setLearningRate(-1));
      assertThrows(IndexOutOfBoundsException.class, () -> sgd.learningRate(2));
    }
  }
}

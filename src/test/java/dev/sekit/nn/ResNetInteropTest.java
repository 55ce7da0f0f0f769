package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.sekit.DType;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.io.SafeTensors;
import java.lang.foreign.Arena;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Residual blocks and every timm ResNet name against the PyTorch statement of timm's modules
 * (src/test/python/resnet_ref.py), forward and backward, with the fused SE kernels (the
 * default). Block fixtures hold the whole state dict (BatchNorm randomised) and every
 * gradient; network fixtures use generated weights (resnet_fixtures.py; regenerated here
 * and checked at the sample indices) and hold the gradients of every parameter at up to 128
 * indices each, the input gradient, the BatchNorm buffers after a train-mode forward and the
 * stage outputs.
 */
class ResNetInteropTest {
  private static final Map<String, Double> WORST = new ConcurrentHashMap<>();

  static Stream<String> cases() {
    return TestSupport.fixtureCases("resnet_block", "resnet").stream();
  }

  private static int num(Map<String, String> m, String k) {
    return Integer.parseInt(m.get(k));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void matchesPyTorch(String name) throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors f = SafeTensors.open(arena, TestSupport.fixtures().resolve(name + ".safetensors"));
      Map<String, String> m = f.metadata();
      DType dtype = m.get("dtype").equals("float64") ? DType.FLOAT64 : DType.FLOAT32;
      boolean net = m.get("module").equals("resnet");
      boolean train = m.get("mode").equals("train");
      Module module;
      if (net) {
        JsonObject cfg = JsonParser.parseString(m.get("config")).getAsJsonObject();
        module = ResNet.builder(ResNetFixtures.config(cfg)).inChannels(cfg.get("in_chans").getAsInt())
            .numClasses(cfg.get("num_classes").getAsInt()).build(arena);
        module.to(dtype);
        ResNetFixtures.loadGenerated(module);
        int samples = num(m, "samples");
        for (Map.Entry<String, Tensor> e : module.stateDict().entrySet()) {
          Tensor mine = ResNetFixtures.sample(arena, e.getValue(), samples);
          assertEquals(0.0, TestSupport.relativeError(f.tensor("statesample." + e.getKey()), mine),
              "generated weights differ from resnet_fixtures.py's: " + e.getKey());
        }
      } else {
        module = ResidualBlock.builder(ResNetFixtures.kind(m.get("block")), num(m, "in_chs"), num(m, "planes"))
            .stride(num(m, "stride")).cardinality(num(m, "cardinality")).baseWidth(num(m, "base_width"))
            .shortcut(ResNetFixtures.shortcut(m.get("shortcut"))).attention(ResNetFixtures.attention(m.get("attn")))
            .build(arena);
        module.to(dtype);
        module.loadStateDict(f.tensors("state."));
      }
      if (train) {
        module.train();
      } else {
        module.eval();
      }

      boolean grads = f.entries().containsKey("grad_input");
      Tensor x = f.tensor("input");
      if (grads) {
        x.requiresGrad(true);
      }
      Tensor y = grads ? module.forward(x) : module.forward(arena, x, false);
      check(name, "output", dtype, f.tensor("output"), y);
      if (train) {
        for (Map.Entry<String, Tensor> after : f.tensors("state_after.").entrySet()) {
          check(name, after.getKey() + " after forward", dtype, after.getValue(),
              module.stateDict().get(after.getKey()));
        }
      }
      if (grads) {
        y.backward(f.tensor("grad_output"));
        check(name, "grad_input", dtype, f.tensor("grad_input"), x.grad().orElseThrow());
        for (Map.Entry<String, Tensor> p : module.namedParameters().entrySet()) {
          Tensor g = p.getValue().grad().orElseThrow(() -> new AssertionError("no grad for " + p.getKey()));
          if (net) {
            check(name, "grad." + p.getKey(), dtype, f.tensor("gradsample." + p.getKey()),
                ResNetFixtures.sample(arena, g, num(m, "samples")));
          } else {
            check(name, "grad." + p.getKey(), dtype, f.tensor("grad." + p.getKey()), g);
          }
        }
      }
      if (module instanceof ResNet r) {
        // In train mode BatchNorm normalises with the batch's statistics, so a second pass
        // gives the same maps (it only moves the running statistics again).
        List<Tensor> maps = r.forwardStages(arena, f.tensor("input"), false);
        for (int i = 0; i < 4; i++) {
          check(name, "feature." + i, dtype, f.tensor("feature." + i), maps.get(i));
        }
      }
    }
  }

  private static void check(String name, String what, DType dtype, Tensor expected, Tensor actual) {
    String group = name.replaceAll("_(f32|f64)_.*", "").replaceAll("^resnet_block_([a-z]+(_bottleneck)?).*", "block $1")
        .replaceFirst("^resnet_", "");
    TestSupport.assertClose(WORST, group + " " + dtype, name + " " + what, dtype, expected, actual);
  }

  @AfterAll
  static void report() {
    TestSupport.printWorst(WORST);
  }
}

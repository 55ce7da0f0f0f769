package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sekit.DType;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.io.SafeTensors;
import java.lang.foreign.Arena;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * SE and eSE against PyTorch: the fixture script ran torchvision's SqueezeExcitation (or a
 * PyTorch statement of timm's modules) on random inputs and weights; here the same weights
 * are loaded into sekit's blocks, and outputs and every gradient are compared.
 */
class PyTorchInteropTest {
  private static final Map<String, Double> WORST = new ConcurrentHashMap<>();

  static Stream<String> cases() {
    return TestSupport.fixtureCases("se", "ese").stream();
  }

  /** Every case through the fused kernels (the default) and through the libtorch composition. */
  static Stream<Arguments> casesAndPaths() {
    return cases().flatMap(c -> Stream.of(Arguments.of(c, true), Arguments.of(c, false)));
  }

  @ParameterizedTest(name = "{0} fused={1}")
  @MethodSource("casesAndPaths")
  void matchesPyTorch(String name, boolean fused) throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors f = SafeTensors.open(arena, TestSupport.fixtures().resolve(name + ".safetensors"));
      Map<String, String> meta = f.metadata();
      DType dtype = switch (meta.get("dtype")) {
        case "float64" -> DType.FLOAT64;
        case "float32" -> DType.FLOAT32;
        default -> throw new AssertionError("dtype " + meta.get("dtype"));
      };
      Activation gate = meta.get("gate").equals("sigmoid") ? Activation.SIGMOID : Activation.HARD_SIGMOID;
      boolean addMaxPool = Boolean.parseBoolean(meta.get("add_maxpool"));
      int channels = Integer.parseInt(meta.get("channels"));

      Module module;
      if (meta.get("module").equals("se")) {
        int rd = Integer.parseInt(meta.get("rd_channels"));
        SqueezeExcitation.Builder b = SqueezeExcitation.builder(channels).gate(gate).addMaxPool(addMaxPool);
        SqueezeExcitation se = name.contains("_r" + rd + "_") ? b.rdChannels(rd).build(arena) : b.build(arena);
        assertEquals(rd, se.reducedChannels(), "timm's make_divisible(C/16, 8) for C=" + channels);
        module = se;
      } else {
        module = EffectiveSqueezeExcitation.builder(channels).gate(gate).addMaxPool(addMaxPool).build(arena);
      }
      module.to(dtype);
      module.useFusedKernels(fused);
      String path = fused ? "" : "composition ";

      module.loadStateDict(f.tensors("param.")); // strict: the names must be timm's

      Tensor x = f.tensor("input").requiresGrad(true);
      Tensor y = module.forward(x);
      check(path + name, "output", dtype, f.tensor("output"), y);

      y.backward(f.tensor("grad_output"));
      check(path + name, "grad_input", dtype, f.tensor("grad_input"), x.grad().orElseThrow());
      for (Map.Entry<String, Tensor> p : module.namedParameters().entrySet()) {
        check(path + name, "grad." + p.getKey(), dtype, f.tensor("grad." + p.getKey()),
            p.getValue().grad().orElseThrow(() -> new AssertionError("no grad for " + p.getKey())));
      }
    }
  }

  private static void check(String name, String what, DType dtype, Tensor expected, Tensor actual) {
    assertEquals(dtype, actual.dtype(), what + " dtype");
    TestSupport.assertClose(WORST, (name.startsWith("composition ") ? "composition " : "") + dtype + " "
        + (what.startsWith("grad") ? "gradients" : "outputs"),
        name + " " + what, dtype, expected, actual);
  }

  @AfterAll
  static void report() {
    TestSupport.printWorst(WORST);
  }
}

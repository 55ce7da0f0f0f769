package dev.sekit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonParser;
import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.SekitException;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** SGD and AdamW against torch.optim on the same gradients; cross-entropy against F.cross_entropy. */
class OptimizerTest {

  static Stream<String> trainingCases() throws Exception {
    List<String> r = new ArrayList<>();
    JsonParser.parseString(Files.readString(TestSupport.fixtures().resolve("manifest.json")))
        .getAsJsonObject().getAsJsonArray("training").forEach(e -> r.add(e.getAsString()));
    return r.stream();
  }

  static Stream<String> optimizerCases() throws Exception {
    return trainingCases().filter(n -> n.startsWith("optim_"));
  }

  static Stream<String> lossCases() throws Exception {
    return trainingCases().filter(n -> n.startsWith("loss_"));
  }

  private static double num(Map<String, String> m, String k, double dflt) {
    return m.containsKey(k) ? Double.parseDouble(m.get(k)) : dflt;
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("optimizerCases")
  void stepsMatchTorchOptim(String name) throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors f = SafeTensors.open(arena, TestSupport.fixtures().resolve(name + ".safetensors"));
      Map<String, String> m = f.metadata();
      DType dtype = m.get("dtype").equals("f64") ? DType.FLOAT64 : DType.FLOAT32;
      EffectiveSqueezeExcitation module = EffectiveSqueezeExcitation.of(arena, 3);
      module.to(dtype);
      Map<String, Tensor> p0 = new LinkedHashMap<>();
      module.stateDict().keySet().forEach(k -> p0.put(k, f.tensor("param0." + k)));
      module.loadStateDict(p0);
      double lr = num(m, "lr", 0);
      Optimizer opt;
      if (m.get("optimizer").equals("sgd")) {
        opt = Optimizer.sgd(module, lr).momentum(num(m, "momentum", 0)).dampening(num(m, "dampening", 0))
            .weightDecay(num(m, "weight_decay", 0)).nesterov(Boolean.parseBoolean(m.getOrDefault("nesterov", "false")))
            .build(arena);
      } else {
        var betas = JsonParser.parseString(m.get("betas")).getAsJsonArray();
        opt = Optimizer.adamW(module, lr).betas(betas.get(0).getAsDouble(), betas.get(1).getAsDouble())
            .eps(num(m, "eps", 1e-8)).weightDecay(num(m, "weight_decay", 0.01)).build(arena);
      }
      int steps = Integer.parseInt(m.get("steps"));
      for (int s = 1; s <= steps; s++) {
        for (Map.Entry<String, Tensor> p : module.namedParameters().entrySet()) {
          p.getValue().setGrad(f.tensor("grad" + s + "." + p.getKey()));
        }
        opt.step();
        for (Map.Entry<String, Tensor> p : module.namedParameters().entrySet()) {
          double err = TestSupport.relativeError(f.tensor("param" + s + "." + p.getKey()), p.getValue());
          double tol = dtype == DType.FLOAT64 ? 1e-14 : 1e-6;
          assertTrue(err <= tol, name + " step " + s + " " + p.getKey() + ": relative error " + err);
        }
      }
      assertEquals(steps, opt.steps());
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("lossCases")
  void crossEntropyMatchesPyTorch(String name) throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors f = SafeTensors.open(arena, TestSupport.fixtures().resolve(name + ".safetensors"));
      DType dtype = f.metadata().get("dtype").equals("f64") ? DType.FLOAT64 : DType.FLOAT32;
      Tensor logits = f.tensor("logits").requiresGrad(true);
      Tensor loss = Losses.crossEntropy(logits, f.tensor("targets"), Double.parseDouble(f.metadata().get("label_smoothing")));
      double expected = f.tensor("loss").to(DType.FLOAT64).toDoubleArray()[0];
      assertEquals(expected, loss.item(), Math.abs(expected) * TestSupport.tolerance(dtype));
      loss.backward();
      assertTrue(TestSupport.relativeError(f.tensor("grad_logits"), logits.grad().orElseThrow()) <= TestSupport.tolerance(dtype));
    }
  }

  @Test
  void scheduleAndBadArguments() throws Exception {
    CosineSchedule s = new CosineSchedule(0.1, 0.0, 10, 110);
    assertEquals(0.01, s.at(0), 1e-15);
    assertEquals(0.1, s.at(9), 1e-15);
    assertEquals(0.1, s.at(10), 1e-15);
    assertEquals(0.05, s.at(60), 1e-12);
    assertEquals(0.0, s.at(110), 1e-15);
    assertThrows(IllegalArgumentException.class, () -> new CosineSchedule(0.1, 0, 10, 10));
    try (Arena arena = Arena.ofConfined()) {
      EffectiveSqueezeExcitation m = EffectiveSqueezeExcitation.of(arena, 4);
      SekitException e = assertThrows(SekitException.class,
          () -> Optimizer.sgd(m, 0.1).momentum(0).nesterov(true).build(arena));
      assertTrue(e.getMessage().contains("Nesterov momentum requires a momentum > 0"), e.getMessage());
      assertThrows(SekitException.class, () -> Optimizer.sgd(m, -1).build(arena));
      Tensor logits = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 2, 3);
      e = assertThrows(SekitException.class,
          () -> Losses.crossEntropy(logits, Tensor.copyOf(arena, new long[] {0, 3}, 2), 0));
      assertTrue(e.getMessage().contains("targets span [0, 3] but there are 3 classes"), e.getMessage());
      assertThrows(IllegalArgumentException.class, () -> Losses.crossEntropy(logits, logits, 1.0));
    }
  }
}

package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.io.SafeTensors;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's flow for SE-ResNets: a state dict saved from PyTorch (the statement of timm's
 * seresnet18, timm's keys) as safetensors loads strictly into a Java ResNet and gives
 * PyTorch's logits and stage maps; as a backbone (no head) it loads non-strictly.
 */
class ResNetCheckpointTest {
  private static final String FIXTURE = "resnet_checkpoint_seresnet18_f32_eval_64x64.safetensors";

  @TempDir Path dir;

  @Test
  void stateDictFromPyTorchGivesItsLogits() throws Exception {
    Path ckpt = dir.resolve("seresnet18.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors fixture = SafeTensors.open(arena, TestSupport.fixtures().resolve(FIXTURE));
      SafeTensors.write(ckpt, fixture.tensors("state."), Map.of("format", "pt")); // what save_file(state_dict) writes
    }
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors ref = SafeTensors.open(arena, TestSupport.fixtures().resolve(FIXTURE));
      ResNet net = ResNet.create(arena, "seresnet18");
      net.loadStateDict(SafeTensors.open(arena, ckpt).tensors());   // strict
      net.eval();
      Tensor logits = net.forward(arena, ref.tensor("input"), false);
      double err = TestSupport.relativeError(ref.tensor("output"), logits);
      assertTrue(err < TestSupport.tolerance(DType.FLOAT32), "logits differ by " + err);

      ResNet backbone = ResNet.builder("seresnet18").numClasses(0).build(arena);
      Module.LoadResult r = backbone.loadStateDict(SafeTensors.open(arena, ckpt).tensors(), false);
      assertEquals(List.of("fc.bias", "fc.weight"), r.unexpectedKeys());
      assertEquals(List.of(), r.missingKeys());
      backbone.eval();
      List<Tensor> maps = backbone.forwardStages(arena, ref.tensor("input"), false);
      for (int i = 0; i < 4; i++) {
        double e = TestSupport.relativeError(ref.tensor("feature." + i), maps.get(i));
        assertTrue(e < TestSupport.tolerance(DType.FLOAT32), "stage " + i + " differs by " + e);
      }
    }
  }
}

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
 * The README's flow: a timm-format checkpoint (state_dict keys, safetensors) loaded into a
 * Java VoVNet gives PyTorch's logits; as a backbone (no head) it loads non-strictly.
 */
class TimmCheckpointTest {
  @TempDir Path dir;

  @Test
  void timmCheckpointGivesPyTorchsLogits() throws Exception {
    Path ckpt = dir.resolve("ese_vovnet19b_dw.safetensors");
    SafeTensors fixture;
    try (Arena arena = Arena.ofConfined()) {
      fixture = SafeTensors.open(arena, TestSupport.fixtures().resolve("vovnet_ese_vovnet19b_dw_eval_224.safetensors"));
      SafeTensors.write(ckpt, fixture.tensors("state."), Map.of("format", "pt")); // what save_file(state_dict) writes
    }
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors ref = SafeTensors.open(arena, TestSupport.fixtures().resolve("vovnet_ese_vovnet19b_dw_eval_224.safetensors"));
      VoVNet net = VoVNet.create(arena, "ese_vovnet19b_dw");
      net.loadStateDict(SafeTensors.open(arena, ckpt).tensors());
      net.eval();
      Tensor logits = net.forward(arena, ref.tensor("input"), false);
      double err = TestSupport.relativeError(ref.tensor("output"), logits);
      assertTrue(err < TestSupport.tolerance(DType.FLOAT32), "logits differ by " + err);

      VoVNet backbone = VoVNet.builder("ese_vovnet19b_dw").numClasses(0).build(arena);
      Module.LoadResult r = backbone.loadStateDict(SafeTensors.open(arena, ckpt).tensors(), false);
      assertEquals(List.of("head.fc.bias", "head.fc.weight"), r.unexpectedKeys());
      assertEquals(List.of(), r.missingKeys());
      backbone.eval();
      List<Tensor> maps = backbone.forwardStages(arena, ref.tensor("input"), false);
      assertTrue(TestSupport.relativeError(ref.tensor("feature.3"), maps.get(3)) < 1e-5);
    }
  }
}

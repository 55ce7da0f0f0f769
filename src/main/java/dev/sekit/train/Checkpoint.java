package dev.sekit.train;

import dev.sekit.Tensor;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Module;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * A training checkpoint in one safetensors file: the model's state dict under
 * {@code model.}, the optimizer's state under {@code optim.}, and the non-tensor state
 * (epoch, step, configuration) as string metadata. Written atomically: a crash during
 * {@link #save} leaves the previous checkpoint intact.
 */
public final class Checkpoint {
  private Checkpoint() {}

  public static void save(Path file, Module model, Optimizer optimizer, Map<String, String> metadata) {
    Objects.requireNonNull(model, "model");
    Map<String, Tensor> all = new LinkedHashMap<>();
    model.stateDict().forEach((k, t) -> all.put("model." + k, t));
    if (optimizer != null) {
      optimizer.stateDict().forEach((k, t) -> all.put("optim." + k, t));
    }
    SafeTensors.write(file, all, metadata);
  }

  /**
   * Restores {@code model} (strictly) and {@code optimizer} (when not null) from {@code file}.
   *
   * @return the checkpoint's metadata
   */
  public static Map<String, String> load(Path file, Module model, Optimizer optimizer) {
    Objects.requireNonNull(model, "model");
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors st = SafeTensors.open(arena, file);
      Map<String, Tensor> m = st.tensors("model.");
      Map<String, Tensor> o = st.tensors("optim.");
      model.loadStateDict(m);
      if (optimizer != null) {
        optimizer.loadStateDict(o);
      }
      return st.metadata();
    }
  }
}

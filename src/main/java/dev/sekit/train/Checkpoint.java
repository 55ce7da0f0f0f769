package dev.sekit.train;

import dev.sekit.Tensor;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Module;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * A training checkpoint in one safetensors file: the model's state dict under
 * {@code model.}, the optimizer's state under {@code optim.}, and the non-tensor state
 * (epoch, step, configuration) as string metadata. Written atomically: a failure during
 * {@link #save} (a full disk, a crash) leaves the previous checkpoint intact. Loading checks
 * everything before it changes anything.
 */
public final class Checkpoint {
  private Checkpoint() {}

  public static void save(Path file, Module model, Optimizer optimizer, Map<String, String> metadata)
      throws IOException {
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
   * @throws IllegalArgumentException when the checkpoint does not fit the model or the
   *     optimizer; neither has changed then
   */
  public static Map<String, String> load(Path file, Module model, Optimizer optimizer) throws IOException {
    return load(file, model, optimizer, meta -> { });
  }

  /**
   * As {@link #load(Path, Module, Optimizer)}, with {@code checkMetadata} run on the metadata
   * before anything is loaded: it throws to refuse the checkpoint (say, another seed).
   */
  public static Map<String, String> load(Path file, Module model, Optimizer optimizer,
      Consumer<Map<String, String>> checkMetadata) throws IOException {
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(checkMetadata, "checkMetadata");
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors st = SafeTensors.open(arena, file);
      Map<String, Tensor> m = st.tensors("model.");
      Map<String, Tensor> o = st.tensors("optim.");
      checkMetadata.accept(st.metadata());
      model.checkStateDict(m, true, false);
      if (optimizer != null) {
        optimizer.checkStateDict(o);
      }
      model.loadStateDict(m);
      if (optimizer != null) {
        optimizer.loadStateDict(o);
      }
      return st.metadata();
    }
  }
}

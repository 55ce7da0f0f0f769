package dev.sekit.dist;

import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeProcessGroup;
import dev.sekit.nn.Module;
import java.util.Objects;

/**
 * Batch statistics over all ranks, as PyTorch's {@code nn.SyncBatchNorm}. Under data-parallel
 * training each rank sees only its share of a batch, and a plain BatchNorm normalises with
 * that share's mean and variance (as in PyTorch). After {@link #convert}, every BatchNorm of
 * the module normalises in training mode with the mean and variance of the whole batch over
 * every rank, and updates its running statistics with them, so 2 ranks × 16 samples train as
 * 1 process × 32 does, and every rank holds the same running statistics.
 *
 * <ul>
 *   <li>Each training forward of a BatchNorm all-gathers its per-channel mean, variance and
 *       count (combined in float64); its backward all-reduces the per-channel sums of
 *       {@code dy} and {@code dy·(x−mean)}, as PyTorch's SyncBatchNorm does. The weight and
 *       bias gradients stay local: {@link DistributedDataParallel} averages them.
 *   <li>Every rank must therefore run the same training forwards and backwards, and no other
 *       thread may use the group meanwhile. Evaluation mode is unchanged (running statistics).
 *   <li>The module keeps the group's connections alive while it is converted; a rank that is
 *       lost makes the others' forward or backward fail within the group's timeout.
 *   <li>CPU only (Gloo).
 * </ul>
 *
 * <pre>{@code
 * SyncBatchNorm.convert(model, group);     // before the DistributedDataParallel
 * var ddp = DistributedDataParallel.of(arena, group, model);
 * }</pre>
 */
public final class SyncBatchNorm {
  private SyncBatchNorm() {}

  /**
   * Makes every BatchNorm of {@code module} (and below) synchronise its batch statistics over
   * {@code group} in training; returns how many it set (0 for a module without BatchNorm).
   */
  public static int convert(Module module, ProcessGroup group) {
    Objects.requireNonNull(module, "module");
    Objects.requireNonNull(group, "group");
    return NativeProcessGroup.syncBatchNorm(Bridge.of(module), group.nativeGroup());
  }

  /** Gives every BatchNorm of {@code module} its own rank's statistics back; returns how many. */
  public static int revert(Module module) {
    Objects.requireNonNull(module, "module");
    return NativeProcessGroup.syncBatchNorm(Bridge.of(module), null);
  }
}

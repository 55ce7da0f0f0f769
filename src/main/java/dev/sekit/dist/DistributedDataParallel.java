package dev.sekit.dist;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeDdp;
import dev.sekit.nn.Module;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * Data-parallel training of a module over a {@link ProcessGroup}, as PyTorch's
 * {@code DistributedDataParallel}: every rank holds a replica, trains on its own share of
 * each batch, and after each backward every replica holds the gradients averaged over the
 * ranks, so the optimizer steps keep the replicas identical.
 *
 * <ul>
 *   <li>At construction every parameter and buffer is set to rank 0's (a broadcast).
 *   <li>During backward, each parameter's gradient goes, as soon as autograd has accumulated
 *       it, into a bucket (buckets of at most {@link Builder#bucketBytes} bytes, 25 MiB by
 *       default, filled in reverse parameter order); a full bucket is all-reduced
 *       asynchronously while backward goes on. At the end of backward the buckets are waited
 *       for and the averages written back, before {@code backward()} returns.
 *   <li>{@link #forward} in training mode with gradients first sets the buffers (BatchNorm
 *       running statistics) to rank 0's, as DDP's {@code broadcast_buffers}; BatchNorm itself
 *       normalises with each process's own batch statistics (as PyTorch's BatchNorm2d under
 *       DDP) unless the module was given to {@link SyncBatchNorm#convert} first.
 * </ul>
 *
 * <p>Every rank must run the same forward/backward sequence; a parameter that got no
 * gradient in a backward counts as zero. Frozen parameters ({@code requires_grad} off, as
 * {@link dev.sekit.train.ParamGroups.Builder#freeze} makes them) take rank 0's value at construction
 * and are never reduced. Gradient accumulation over several backward calls
 * without an optimizer step reduces the accumulated gradients each time (there is no
 * {@code no_sync}). CPU only (Gloo).
 */
public final class DistributedDataParallel implements AutoCloseable {
  /** DDP's default bucket cap: 25 MiB. */
  public static final long DEFAULT_BUCKET_BYTES = 25L << 20;

  private final NativeDdp ddp;
  private final Module module;
  private final ProcessGroup group;
  private final boolean broadcastBuffers;

  private DistributedDataParallel(Arena arena, ProcessGroup group, Module module, long bucketBytes,
      boolean broadcastBuffers) {
    this.module = module;
    this.group = group;
    this.broadcastBuffers = broadcastBuffers;
    this.ddp = NativeDdp.create(arena, group.nativeGroup(), Bridge.of(module), bucketBytes);
  }

  /** With the defaults (25 MiB buckets, buffers broadcast before each training forward). */
  public static DistributedDataParallel of(Arena arena, ProcessGroup group, Module module) {
    return builder(group, module).build(arena);
  }

  public static Builder builder(ProcessGroup group, Module module) {
    return new Builder(Objects.requireNonNull(group, "group"), Objects.requireNonNull(module, "module"));
  }

  /** Options of a {@link DistributedDataParallel}. */
  public static final class Builder {
    private final ProcessGroup group;
    private final Module module;
    private long bucketBytes = DEFAULT_BUCKET_BYTES;
    private boolean broadcastBuffers = true;

    private Builder(ProcessGroup group, Module module) {
      this.group = group;
      this.module = module;
    }

    /** The largest bucket of gradients reduced at once (a larger parameter gets one of its own). */
    public Builder bucketBytes(long v) {
      if (v < 1) {
        throw new IllegalArgumentException("bucketBytes must be >= 1, got " + v);
      }
      this.bucketBytes = v;
      return this;
    }

    /** Set the buffers to rank 0's before each training forward (default, as PyTorch's DDP). */
    public Builder broadcastBuffers(boolean v) {
      this.broadcastBuffers = v;
      return this;
    }

    /**
     * Broadcasts rank 0's state (a collective: every rank builds its DDP at the same point)
     * and hooks the gradients. The hooks live until {@link #close} or until {@code arena}
     * closes. First the ranks compare their models (names, dtypes and shapes of the
     * parameters and buffers, and which parameters are frozen).
     *
     * @throws dev.sekit.SekitException (code DISTRIBUTED) on every rank, naming the difference,
     *     when the ranks' models differ; nothing was changed then
     */
    public DistributedDataParallel build(Arena arena) {
      Objects.requireNonNull(arena, "arena");
      return new DistributedDataParallel(arena, group, module, bucketBytes, broadcastBuffers);
    }
  }

  /** The wrapped module (its parameters are the replica of this rank). */
  public Module module() {
    return module;
  }

  public ProcessGroup processGroup() {
    return group;
  }

  /**
   * The module's forward; with {@code recordGrad} in training mode it first syncs the
   * buffers from rank 0 (when asked for) and readies the buckets for the next backward.
   */
  public Tensor forward(Arena arena, Tensor x, boolean recordGrad) {
    if (recordGrad && module.isTraining()) {
      ddp.prepare(broadcastBuffers);
    }
    return module.forward(arena, x, recordGrad);
  }

  /** Sets every parameter and buffer to rank 0's again (say, after rank 0 loaded a checkpoint). */
  public void broadcastState() {
    ddp.broadcastState();
  }

  /** Counters since construction. */
  public Stats stats() {
    double[] s = ddp.stats();
    return new Stats((int) s[0], (long) s[1], s[2]);
  }

  /**
   * @param buckets buckets the gradients are reduced in
   * @param reductions backward passes whose gradients were averaged
   * @param waitSeconds time backward spent at its end waiting for reductions (communication
   *     that was not hidden behind backward)
   */
  public record Stats(int buckets, long reductions, double waitSeconds) {}

  /** Detaches the gradient hooks: later backward passes reduce nothing (idempotent). */
  @Override
  public void close() {
    ddp.close();
  }
}

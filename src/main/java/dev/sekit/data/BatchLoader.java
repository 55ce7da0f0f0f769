package dev.sekit.data;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.DType;
import dev.sekit.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Reads batches of a {@link Dataset} ahead of the model, on threads of its own, into
 * off-heap buffers that it owns and recycles. Batches come out in order; each one's tensors
 * view its buffer without a copy, so a batch is {@link Batch#close() closed} when the step
 * that used it is over (after the backward), which hands its buffer back.
 *
 * <pre>{@code
 * int[] order = EpochOrder.shard(data.size(), seed, epoch, rank, worldSize);
 * try (BatchLoader loader = new BatchLoader(data, order, 128, true, 2)) {
 *   for (int i = 0; i < loader.batches(); i++) {
 *     try (BatchLoader.Batch b = loader.next(); Arena step = Arena.ofConfined()) {
 *       Tensor x = b.inputs(step), y = b.labels(step);
 *       ...
 *     }
 *   }
 * }
 * }</pre>
 */
public final class BatchLoader implements AutoCloseable {
  private final Dataset data;
  private final int[] order;
  private final int batchSize;
  private final int batches;
  private final long[] sampleShape;
  private final long sampleBytes;
  private final Arena buffers = Arena.ofShared();
  private final BlockingQueue<Buffer> free;
  private final ExecutorService workers;
  // Concurrent: close() may run on another thread than next(), and walks it to cancel.
  private final java.util.concurrent.ConcurrentLinkedDeque<CompletableFuture<Batch>> ahead =
      new java.util.concurrent.ConcurrentLinkedDeque<>();
  private int submitted;
  private volatile boolean closed;
  /** The batch next() waits for, so that close() from another thread can end the wait. */
  private volatile CompletableFuture<Batch> waiting;

  /**
   * @param data the samples
   * @param order the indices to visit, in order (see {@link EpochOrder})
   * @param batchSize samples per batch
   * @param dropLast leave out a last batch smaller than {@code batchSize} (training does)
   * @param threads loading threads (at least 1); {@code threads + 2} buffers are read ahead
   */
  public BatchLoader(Dataset data, int[] order, int batchSize, boolean dropLast, int threads) {
    this.data = Objects.requireNonNull(data, "data");
    this.order = Objects.requireNonNull(order, "order").clone();
    if (batchSize < 1) {
      throw new IllegalArgumentException("batchSize must be >= 1, got " + batchSize);
    }
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be >= 1, got " + threads);
    }
    for (int i : this.order) {
      Objects.checkIndex(i, data.size());
    }
    this.batchSize = batchSize;
    this.batches = dropLast ? order.length / batchSize : (order.length + batchSize - 1) / batchSize;
    this.sampleShape = data.sampleShape();
    this.sampleBytes = data.sampleBytes();
    int count = threads + 2;
    this.free = new ArrayBlockingQueue<>(count);
    for (int i = 0; i < count; i++) {
      free.add(new Buffer(buffers.allocate(sampleBytes * batchSize, 64), buffers.allocate(JAVA_LONG, batchSize)));
    }
    this.workers = Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "sekit-batch-loader");
      t.setDaemon(true);
      return t;
    });
  }

  /** Number of batches this loader gives. */
  public int batches() {
    return batches;
  }

  /** Skips the first {@code n} batches (to resume in the middle of an epoch); call before {@link #next}. */
  public void skip(int n) {
    if (submitted != 0 || n < 0 || n > batches) {
      throw new IllegalStateException("skip(" + n + ") must come first and stay within " + batches + " batches");
    }
    submitted = n;
  }

  /**
   * The next batch (waiting for it if it is not read yet), or null after the last one.
   *
   * <p>A batch with a sample that fails to read (a missing or corrupt file) is not given:
   * this call throws that sample's exception, the batch counts as taken, its buffer goes
   * back to the loader, and the next call gives the following batch. Null means the end of
   * the data and nothing else.
   *
   * @throws IllegalStateException when every buffer is held by a batch not yet closed
   */
  public Batch next() {
    if (closed) {
      throw new IllegalStateException("this loader is closed");
    }
    fill();
    CompletableFuture<Batch> f = ahead.poll();
    if (f == null) {
      if (submitted < batches) {
        throw new IllegalStateException("all " + free.remainingCapacity() + " buffers of this loader are held by"
            + " batches not closed yet; close each batch when its step is over");
      }
      return null;
    }
    waiting = f;
    try {
      if (closed) {
        f.cancel(true);
      }
      return f.get();
    } catch (java.util.concurrent.CancellationException e) {
      throw new IllegalStateException("this loader was closed while next() waited for a batch", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for a batch", e);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException("loading a batch failed: " + c, c);
    } finally {
      waiting = null;
      fill();
    }
  }

  /** Starts reading as many batches ahead as there are free buffers. */
  private void fill() {
    while (submitted < batches && !closed) {
      Buffer buf = free.poll();
      if (buf == null) {
        return;
      }
      int b = submitted;
      try {
        ahead.add(CompletableFuture.supplyAsync(() -> load(b, buf), workers));
      } catch (java.util.concurrent.RejectedExecutionException e) {
        free.add(buf); // close() on another thread stopped the workers after the check above
        return;
      }
      submitted++;
    }
  }

  private Batch load(int b, Buffer buf) {
    int first = b * batchSize;
    int n = Math.min(batchSize, order.length - first);
    try {
      for (int i = 0; i < n; i++) {
        long label = data.read(order[first + i], buf.inputs.asSlice(i * sampleBytes, sampleBytes));
        buf.labels.setAtIndex(JAVA_LONG, i, label);
      }
    } catch (Throwable t) {
      free.add(buf); // a failed batch is never given out: its buffer goes straight back
      throw t;
    }
    return new Batch(buf, n);
  }

  /**
   * Stops the loading threads and frees the buffers; tensors of its batches die with them.
   * Returns within about a second: a thread still inside a read that ignores interrupts
   * keeps the buffers until it ends, then they are freed.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    workers.shutdownNow();
    CompletableFuture<Batch> w = waiting;
    if (w != null) {
      w.cancel(true); // a next() waiting on another thread throws IllegalStateException
    }
    for (CompletableFuture<Batch> f : ahead) {
      f.cancel(true);
    }
    boolean stopped = false;
    try {
      stopped = workers.awaitTermination(1, java.util.concurrent.TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (stopped) {
      buffers.close();
      return;
    }
    // A sample read is stuck where an interrupt does not reach (an unresponsive network
    // file system, a long native decode): close returns now, and the buffers, which that
    // thread may still write into, are freed when it ends.
    Thread.ofPlatform().daemon().name("sekit-batch-loader-close").start(() -> {
      try {
        while (!workers.awaitTermination(1, java.util.concurrent.TimeUnit.MINUTES)) {
          // keep waiting: freeing the buffers under a running read would be a crash
        }
        buffers.close();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
  }

  private record Buffer(MemorySegment inputs, MemorySegment labels) {}

  /** One batch: {@link #size()} inputs and labels in a buffer of the loader. */
  public final class Batch implements AutoCloseable {
    private final Buffer buf;
    private final int size;
    private boolean returned;

    private Batch(Buffer buf, int size) {
      this.buf = buf;
      this.size = size;
    }

    public int size() {
      return size;
    }

    /** The inputs [size, ...sampleShape] as a float32 tensor viewing the buffer, its handle in {@code arena}. */
    public Tensor inputs(Arena arena) {
      long[] shape = new long[sampleShape.length + 1];
      shape[0] = size;
      System.arraycopy(sampleShape, 0, shape, 1, sampleShape.length);
      return Tensor.wrap(arena, buf.inputs.asSlice(0, size * sampleBytes), DType.FLOAT32, shape);
    }

    /** The labels [size] as an int64 tensor viewing the buffer, its handle in {@code arena}. */
    public Tensor labels(Arena arena) {
      return Tensor.wrap(arena, buf.labels.asSlice(0, 8L * size), DType.INT64, size);
    }

    /** Hands the buffer back to the loader (its tensors then see the next batch's values). */
    @Override
    public void close() {
      if (!returned) {
        returned = true;
        free.add(buf);
      }
    }
  }
}

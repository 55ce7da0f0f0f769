package dev.sekit.data;

import java.lang.foreign.MemorySegment;

/**
 * Labelled samples for training and evaluation, read one at a time into memory the caller
 * provides. A {@link BatchLoader} calls {@link #read} from its own threads, so an
 * implementation must allow concurrent reads of different samples (the in-memory and
 * file-backed data sets of this package do).
 */
public interface Dataset {
  /** Number of samples. */
  int size();

  /** Shape of one input, e.g. {@code [1, 28, 28]}; every input is float32 in this layout. */
  long[] sampleShape();

  /** Number of classes (labels are in {@code [0, classes)}). */
  int classes();

  /**
   * Writes sample {@code index}'s input, float32 in row-major {@link #sampleShape()} order,
   * into {@code dst} (exactly {@code product(sampleShape) * 4} bytes) and returns its label.
   */
  long read(int index, MemorySegment dst);

  /**
   * Tells a data set with random transforms which epoch comes next, so that each epoch draws
   * its own random crops (as PyTorch's {@code DistributedSampler.set_epoch}); a trainer calls
   * it before each epoch. Data sets without randomness ignore it.
   */
  default void setEpoch(int epoch) {}

  /** Bytes of one input. */
  default long sampleBytes() {
    long n = 4;
    for (long s : sampleShape()) {
      n = Math.multiplyExact(n, s);
    }
    return n;
  }
}

package dev.sekit.data;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Which samples a process visits in an epoch, in which order: a permutation of the data set
 * that depends only on (seed, epoch), split into {@code worldSize} equal shards of which
 * rank {@code rank} takes every {@code worldSize}-th index (as PyTorch's
 * DistributedSampler does: when the size does not divide, the permutation is padded with
 * its own first indices so that every rank gets as many samples). One process is rank 0 of
 * a world of 1: it gets the whole permutation.
 */
public final class EpochOrder {
  private EpochOrder() {}

  /** The permutation of {@code size} samples for (seed, epoch): the same on every machine. */
  public static int[] permutation(int size, long seed, int epoch) {
    if (size < 1) {
      throw new IllegalArgumentException("size must be >= 1, got " + size);
    }
    if (epoch < 0) {
      throw new IllegalArgumentException("epoch must be >= 0, got " + epoch);
    }
    int[] p = new int[size];
    for (int i = 0; i < size; i++) {
      p[i] = i;
    }
    SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + epoch);
    for (int i = size - 1; i > 0; i--) {
      int j = r.nextInt(i + 1);
      int t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** Rank {@code rank}'s share of epoch {@code epoch}: {@code ceil(size / worldSize)} indices. */
  public static int[] shard(int size, long seed, int epoch, int rank, int worldSize) {
    if (worldSize < 1 || rank < 0 || rank >= worldSize) {
      throw new IllegalArgumentException("need 0 <= rank < worldSize, got rank " + rank + " of " + worldSize);
    }
    int[] p = permutation(size, seed, epoch);
    if (worldSize == 1) {
      return p;
    }
    int per = (size + worldSize - 1) / worldSize;
    int[] padded = Arrays.copyOf(p, per * worldSize);
    for (int i = size; i < padded.length; i++) {
      padded[i] = p[(i - size) % size];
    }
    int[] mine = new int[per];
    for (int i = 0; i < per; i++) {
      mine[i] = padded[rank + i * worldSize];
    }
    return mine;
  }
}

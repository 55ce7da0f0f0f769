package dev.sekit.crash;

import dev.sekit.Sekit;

/**
 * Loads sekit, then makes HotSpot raise and handle its own SIGSEGVs: a hot loop whose compiled
 * code reads a field through an implicit null check, with an occasional null. Where a library
 * that libtorch loads (UCX, through MPI) takes SIGSEGV for itself, the JVM aborts here.
 */
public final class HotSpotSignals {
  private HotSpotSignals() {}

  static final class Box {
    int value;

    Box(int value) {
      this.value = value;
    }
  }

  static int read(Box b) {
    return b.value;
  }

  public static void main(String[] args) {
    System.out.println("libtorch " + Sekit.torchVersion());
    Box[] boxes = new Box[4096];
    for (int i = 0; i < boxes.length; i++) {
      boxes[i] = new Box(i);
    }
    long sum = 0;
    long npes = 0;
    long end = System.nanoTime() + 2_000_000_000L;
    for (int round = 0; System.nanoTime() < end; round++) {
      int hole = round % boxes.length;
      Box kept = boxes[hole];
      if (round % 64 == 0) {
        boxes[hole] = null;
      }
      for (Box b : boxes) {
        try {
          sum += read(b);
        } catch (NullPointerException e) {
          npes++;
        }
      }
      boxes[hole] = kept;
    }
    System.out.println("survived " + npes + " null checks (" + sum + ")");
  }
}

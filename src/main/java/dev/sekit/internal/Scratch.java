package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Per-thread scratch memory for the arguments and out-parameters of one native call: shapes,
 * out-pointers, counts. A call takes a {@link Frame}, allocates from it, and closes it
 * (try-with-resources); frames nest. Cheaper than a confined arena per call, which matters
 * for calls that take microseconds. The memory belongs to an automatic arena, so it goes
 * away with its thread.
 */
final class Scratch {
  private static final long SIZE = 1 << 10;
  private static final ThreadLocal<Scratch> PER_THREAD = ThreadLocal.withInitial(Scratch::new);

  private final MemorySegment memory = Arena.ofAuto().allocate(SIZE, 64);
  private long top;

  /** A frame of this thread's scratch memory. */
  static Frame frame() {
    Scratch s = PER_THREAD.get();
    return s.new Frame(s.top);
  }

  /** Allocations of one native call; closing returns them. */
  final class Frame implements AutoCloseable {
    private final long mark;

    private Frame(long mark) {
      this.mark = mark;
    }

    MemorySegment allocate(long bytes) {
      long at = (top + 7) & ~7L;
      if (at + bytes > SIZE) {
        throw new IllegalArgumentException("a native call's arguments need more than "
            + SIZE + " bytes of scratch memory");
      }
      top = at + bytes;
      return memory.asSlice(at, bytes);
    }

    /** A pointer-sized out-parameter set to NULL. */
    MemorySegment pointer() {
      return pointers(1);
    }

    /** {@code n} pointer-sized out-parameters set to NULL. */
    MemorySegment pointers(int n) {
      MemorySegment s = allocate(ADDRESS.byteSize() * n);
      s.fill((byte) 0);
      return s;
    }

    MemorySegment longs(long... values) {
      MemorySegment s = allocate(8L * values.length);
      MemorySegment.copy(values, 0, s, JAVA_LONG, 0, values.length);
      return s;
    }

    MemorySegment longs(int... values) {
      MemorySegment s = allocate(8L * values.length);
      for (int i = 0; i < values.length; i++) {
        s.setAtIndex(JAVA_LONG, i, values[i]);
      }
      return s;
    }

    MemorySegment oneLong() {
      return allocate(JAVA_LONG.byteSize());
    }

    MemorySegment oneInt() {
      return allocate(JAVA_INT.byteSize());
    }

    MemorySegment oneDouble() {
      return allocate(JAVA_DOUBLE.byteSize());
    }

    @Override
    public void close() {
      top = mark;
    }
  }
}

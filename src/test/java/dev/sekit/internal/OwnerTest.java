package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.TestSupport;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The owners of arenas: one per open arena, none left by closed ones, nothing leaked. */
class OwnerTest {

  @Test
  void closedArenasLeaveNoOwnerBehind() {
    int before = Owner.liveOwners();
    List<Arena> closed = new ArrayList<>(); // strongly reachable: weak keys alone would stay
    for (int i = 0; i < 1000; i++) {
      Arena a = Arena.ofConfined();
      NativeTensor.create(a, NativeTensor.Fill.ZEROS, DType.FLOAT32, Device.CPU, new long[] {4}, 0, 0);
      a.close();
      closed.add(a);
    }
    assertEquals(before, Owner.liveOwners(), "owners of closed arenas are still in the map");
    try (Arena open = Arena.ofConfined()) {
      NativeTensor.create(open, NativeTensor.Fill.ZEROS, DType.FLOAT32, Device.CPU, new long[] {4}, 0, 0);
      assertEquals(before + 1, Owner.liveOwners());
    }
    assertEquals(before, Owner.liveOwners());
  }

  /**
   * A result whose arena another thread closed while the native call ran: it is freed and the
   * caller told so, never leaked. (The interleaving made by hand: the call returns its tensor
   * after the close.)
   */
  @Test
  void aResultWhoseArenaClosedDuringTheCallIsFreed() {
    long before = TestSupport.rssBytes();
    for (int i = 0; i < 200; i++) {
      Arena shared = Arena.ofShared();
      NativeTensor.create(shared, NativeTensor.Fill.ZEROS, DType.FLOAT32, Device.CPU, new long[] {4}, 0, 0);
      MemorySegment result = madeByTheCall(1 << 20); // 4 MiB, touched
      shared.close();
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> NativeTensor.adopt(result, shared, NativeTensor.Origin.FRESH));
      assertTrue(e.getMessage().contains("closed while the result was made"), e.getMessage());
    }
    long grown = TestSupport.rssBytes() - before;
    assertTrue(grown < 200L << 20, "resident memory grew by " + (grown >> 20) + " MiB: 800 MiB of results leaked?");
  }

  /** A native tensor of {@code floats} ones that nobody owns yet. */
  private static MemorySegment madeByTheCall(long floats) {
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment shape = scratch.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, floats);
      MemorySegment out = scratch.allocate(ADDRESS);
      Calls.check(sekit_h.sk_tensor_randn(shape, 1, Abi.code(DType.FLOAT32), Abi.deviceType(Device.CPU), -1, out));
      return out.get(ADDRESS, 0);
    }
  }
}

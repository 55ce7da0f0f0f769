package dev.sekit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** The CPU allocator's cache: freed large blocks of a recurring size are handed out again, within its limit. */
class CpuCacheTest {
  // A size no other test allocates (3 MiB + 4 KiB of float32); this class's other sizes are
  // FLOATS + 2048 and FLOATS + 4096.
  private static final long FLOATS = (3L << 20) / 4 + 1024;
  private static final long BYTES = FLOATS * 4;

  @Test
  void aFreedBlockIsHandedOutAgainAndReleasedOnRequest() {
    long limit = Sekit.cpuCacheLimit();
    assertTrue(limit >= BYTES, "default limit " + limit);
    try (Arena arena = Arena.ofConfined()) {
      long before = Sekit.cpuCacheBytes();
      Tensor.empty(arena, DType.FLOAT32, Device.CPU, FLOATS).close();
      assertTrue(Sekit.cpuCacheBytes() - before < BYTES, "a size requested once is not kept");
      Tensor a = Tensor.empty(arena, DType.FLOAT32, Device.CPU, FLOATS);
      long address = a.dataAddress();
      a.close();
      assertTrue(Sekit.cpuCacheBytes() >= BYTES, "a recurring size is kept: " + Sekit.cpuCacheBytes());
      Tensor b = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, FLOATS);
      assertEquals(address, b.dataAddress(), "the freed block comes back for the same size");
      assertEquals(0.0, b.toFloatArray()[(int) FLOATS - 1], "zeros are zeros on a reused block");
      b.close();
      Sekit.releaseCachedBuffers();
      assertEquals(0, Sekit.cpuCacheBytes());
    }
  }

  @Test
  void theLimitBoundsTheCacheAndZeroTurnsItOff() {
    long limit = Sekit.cpuCacheLimit();
    try (Arena arena = Arena.ofConfined()) {
      Sekit.setCpuCacheLimit(BYTES - 4096);
      for (int i = 0; i < 3; i++) {
        Tensor.empty(arena, DType.FLOAT32, Device.CPU, FLOATS + 4096).close();
      }
      assertTrue(Sekit.cpuCacheBytes() < BYTES, "a block over the limit is not kept");
      Sekit.setCpuCacheLimit(0);
      assertEquals(0, Sekit.cpuCacheBytes(), "a smaller limit empties the cache");
      // A size of its own: the other test needs FLOATS never to have been asked for, and
      // the cache counts requests per size for the life of the process.
      for (int i = 0; i < 3; i++) {
        Tensor.empty(arena, DType.FLOAT32, Device.CPU, FLOATS + 2048).close();
      }
      assertEquals(0, Sekit.cpuCacheBytes(), "limit 0: nothing is kept");
      assertEquals(0, Sekit.cpuCacheLimit());
      assertThrows(IllegalArgumentException.class, () -> Sekit.setCpuCacheLimit(-1));
    } finally {
      Sekit.setCpuCacheLimit(limit);
    }
    assertEquals(limit, Sekit.cpuCacheLimit());
  }
}

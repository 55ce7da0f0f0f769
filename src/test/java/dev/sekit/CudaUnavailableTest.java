package dev.sekit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** Without CUDA, every CUDA entry point fails with one clear sentence and the JVM lives. */
class CudaUnavailableTest {
  @Test
  void cudaCallsFailClearlyOnACpuBuild() {
    assumeFalse(Sekit.cudaAvailable(), "CUDA is available: covered by CudaTest");
    assertEquals(0, Sekit.cudaDeviceCount());
    try (Arena arena = Arena.ofConfined()) {
      SekitException e = assertThrows(SekitException.class,
          () -> Cuda.pin(arena, arena.allocate(1024)));
      assertEquals(SekitException.Code.DEVICE, e.code());
      assertTrue(e.getMessage().contains("built against a libtorch without CUDA"), e.getMessage());
      assertThrows(SekitException.class, () -> Cuda.synchronize(Device.cuda(0)));
      assertThrows(SekitException.class, () -> Tensor.zeros(arena, DType.FLOAT32, Device.cuda(0), 4));
    }
  }
}

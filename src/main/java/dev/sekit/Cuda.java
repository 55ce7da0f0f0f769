package dev.sekit;

import dev.sekit.internal.NativeRuntime;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * CUDA services: page-locked host memory and synchronisation.
 *
 * <p><b>What is asynchronous.</b> Work on CUDA tensors (forward, backward, conversions on
 * the device) is queued on the calling thread's current stream and returns at once; calls
 * that hand a value to the host ({@link Tensor#copyTo}, {@link Tensor#toFloatArray},
 * {@link Tensor#item}, optimizer steps, loss/accuracy values) wait for it. Use
 * {@link #synchronize} before timing GPU work from the host.
 */
public final class Cuda {
  private Cuda() {}

  /**
   * Page-locks {@code segment} (off-heap) in place so host↔device copies from and to it are
   * fast: on an H100 machine 51–55 GB/s against 8–13 GB/s for pageable memory. Like every
   * sekit copy, a copy from or to it has finished when the call returns, so the segment can
   * be reused at once. Expensive: do it once per buffer, never per call. The
   * registration is undone when {@code arena} closes; it must not outlive the segment, so
   * pass the segment's own arena or a shorter-lived one.
   *
   * @throws SekitException with code DEVICE when this libsekit has no CUDA
   */
  public static void pin(Arena arena, MemorySegment segment) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(segment, "segment");
    if (!segment.isNative()) {
      throw new IllegalArgumentException("only off-heap (native) segments can be page-locked");
    }
    if (segment.byteSize() == 0) {
      throw new IllegalArgumentException("the segment is empty");
    }
    NativeRuntime.cudaPin(arena, segment);
  }

  /** Waits until all work queued on {@code device} has finished. */
  public static void synchronize(Device device) {
    Objects.requireNonNull(device, "device");
    if (!device.isCuda()) {
      return; // CPU work is synchronous
    }
    NativeRuntime.cudaSynchronize(device.index());
  }
}

package dev.sekit;

import dev.sekit.internal.Native;
import dev.sekit.internal.ffi.sekit_h;
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
  static {
    Native.init();
  }

  private Cuda() {}

  /**
   * Page-locks {@code segment} (off-heap) in place so host↔device copies from and to it are
   * fast and may be asynchronous. Expensive: do it once per buffer, never per call. The
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
    Native.check(sekit_h.sk_cuda_host_register(segment, segment.byteSize()));
    long address = segment.address();
    try {
      // The cleanup runs when the arena closes; it must not throw there, so a failure to
      // unregister (nothing the caller could do about it) is dropped.
      MemorySegment.ofAddress(address).reinterpret(arena, s -> {
        MemorySegment err = sekit_h.sk_cuda_host_unregister(s);
        if (err.address() != 0) {
          sekit_h.sk_error_free(err);
        }
      });
    } catch (RuntimeException e) {
      Native.check(sekit_h.sk_cuda_host_unregister(segment));
      throw e;
    }
  }

  /** Waits until all work queued on {@code device} has finished. */
  public static void synchronize(Device device) {
    Objects.requireNonNull(device, "device");
    if (!device.isCuda()) {
      return; // CPU work is synchronous
    }
    Native.check(sekit_h.sk_cuda_synchronize(device.index()));
  }
}

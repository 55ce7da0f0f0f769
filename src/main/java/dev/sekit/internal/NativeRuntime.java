package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** The library as a whole: versions, threads, seeding, caches, CUDA services. */
public final class NativeRuntime {
  private NativeRuntime() {}

  public static int abiVersion() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_abi_version();
  }

  public static String torchVersion() {
    NativeLoader.ensureLoaded();
    return Calls.string(sekit_h.sk_torch_version());
  }

  public static boolean cudaAvailable() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_cuda_available() == 1;
  }

  public static int cudaDeviceCount() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_cuda_device_count();
  }

  /** The largest intra-op thread count the library accepts (4 per core, at least 8). */
  public static int maxThreads() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_max_num_threads();
  }

  public static void setNumThreads(int n) {
    NativeLoader.ensureLoaded();
    Calls.check(sekit_h.sk_set_num_threads(n));
  }

  public static int numThreads() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_get_num_threads();
  }

  public static void setAllowTf32(boolean convolutions, boolean matrixProducts) {
    NativeLoader.ensureLoaded();
    Calls.check(sekit_h.sk_cuda_set_allow_tf32(convolutions ? 1 : 0, matrixProducts ? 1 : 0));
  }

  /** The flags as sekit.h's bits (SK_TF32_CONVOLUTIONS, SK_TF32_MATMUL). */
  public static int allowTf32() {
    NativeLoader.ensureLoaded();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.oneInt();
      Calls.check(sekit_h.sk_cuda_allow_tf32(out));
      return out.get(JAVA_INT, 0);
    }
  }

  public static boolean allowTf32Convolutions() {
    return (allowTf32() & sekit_h.SK_TF32_CONVOLUTIONS()) != 0;
  }

  public static boolean allowTf32MatrixProducts() {
    return (allowTf32() & sekit_h.SK_TF32_MATMUL()) != 0;
  }

  public static void manualSeed(long seed) {
    NativeLoader.ensureLoaded();
    Calls.check(sekit_h.sk_manual_seed(seed));
  }

  public static void releaseCachedBuffers() {
    NativeLoader.ensureLoaded();
    sekit_h.sk_release_cached_buffers();
  }

  public static long cpuCacheBytes() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_cpu_cache_bytes();
  }

  public static long cpuCacheLimit() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_cpu_cache_limit();
  }

  public static void setCpuCacheLimit(long bytes) {
    NativeLoader.ensureLoaded();
    Calls.check(sekit_h.sk_cpu_cache_set_limit(bytes));
  }

  public static boolean fusedKernelsUseAvx2() {
    NativeLoader.ensureLoaded();
    return sekit_h.sk_fused_kernels_isa() == 1;
  }

  /**
   * Page-locks {@code segment} (native, non-empty: checked by the caller) until {@code arena}
   * closes.
   */
  public static void cudaPin(Arena arena, MemorySegment segment) {
    NativeLoader.ensureLoaded();
    if (!arena.scope().isAlive()) {
      throw new IllegalStateException("the arena is already closed");
    }
    Calls.check(sekit_h.sk_cuda_host_register(segment, segment.byteSize()));
    try {
      // The cleanup runs while the arena closes and must not throw there: a failure to
      // unregister (nothing the caller could act on) is dropped.
      MemorySegment.ofAddress(segment.address()).reinterpret(arena, s -> {
        MemorySegment err = sekit_h.sk_cuda_host_unregister(s);
        if (err.address() != 0) {
          sekit_h.sk_error_free(err);
        }
      });
    } catch (RuntimeException e) {
      Calls.check(sekit_h.sk_cuda_host_unregister(segment));
      throw e;
    }
  }

  public static void cudaSynchronize(int deviceIndex) {
    NativeLoader.ensureLoaded();
    Calls.check(sekit_h.sk_cuda_synchronize(deviceIndex));
  }
}

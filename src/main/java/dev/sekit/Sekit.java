package dev.sekit;

import dev.sekit.internal.Native;
import dev.sekit.internal.ffi.sekit_h;

/** The native runtime: versions, threads, seeding, CUDA availability. */
public final class Sekit {
  static {
    Native.init();
  }

  private Sekit() {}

  /** ABI version of the loaded libsekit (checked against the bindings at load). */
  public static int abiVersion() {
    return sekit_h.sk_abi_version();
  }

  /** Version of the libtorch libsekit runs on. */
  public static String torchVersion() {
    return sekit_h.sk_torch_version().reinterpret(256).getString(0);
  }

  public static boolean cudaAvailable() {
    return sekit_h.sk_cuda_available() == 1;
  }

  public static int cudaDeviceCount() {
    return sekit_h.sk_cuda_device_count();
  }

  /**
   * Sets libtorch's intra-op thread count (process-wide). When the system property
   * {@code sekit.threads} is set, the library applies it on first use.
   */
  public static void setNumThreads(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be >= 1, got " + threads);
    }
    Native.check(sekit_h.sk_set_num_threads(threads));
  }

  public static int numThreads() {
    return sekit_h.sk_get_num_threads();
  }

  /**
   * Frees the output buffers the fused SE/eSE kernels keep for reuse (at most six; a buffer
   * is reused only once nothing references it). Call after a large workload to return memory.
   */
  public static void releaseCachedBuffers() {
    sekit_h.sk_release_cached_buffers();
  }

  /** Whether the fused CPU kernels run their AVX2+FMA build (else the baseline x86-64 one). */
  public static boolean fusedKernelsUseAvx2() {
    return sekit_h.sk_fused_kernels_isa() == 1;
  }

  /** Seeds libtorch's default generators (parameter initialisation, randn, rand). */
  public static void manualSeed(long seed) {
    Native.check(sekit_h.sk_manual_seed(seed));
  }
}

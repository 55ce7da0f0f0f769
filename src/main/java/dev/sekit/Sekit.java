package dev.sekit;

import dev.sekit.internal.NativeRuntime;

/** The native runtime: versions, threads, seeding, CUDA availability. */
public final class Sekit {
  private Sekit() {}

  /** ABI version of the loaded libsekit (checked against the bindings at load). */
  public static int abiVersion() {
    return NativeRuntime.abiVersion();
  }

  /** Version of the libtorch libsekit runs on. */
  public static String torchVersion() {
    return NativeRuntime.torchVersion();
  }

  public static boolean cudaAvailable() {
    return NativeRuntime.cudaAvailable();
  }

  public static int cudaDeviceCount() {
    return NativeRuntime.cudaDeviceCount();
  }

  /**
   * Sets libtorch's intra-op thread count (process-wide), between 1 and
   * {@link #maxThreads()}. When the system property {@code sekit.threads} is set, the library
   * applies it on first use.
   */
  public static void setNumThreads(int threads) {
    int max = maxThreads();
    if (threads < 1 || threads > max) {
      throw new IllegalArgumentException("threads must be in [1, " + max + "] (4 per core of this machine), got "
          + threads);
    }
    NativeRuntime.setNumThreads(threads);
  }

  public static int numThreads() {
    return NativeRuntime.numThreads();
  }

  /** The most intra-op threads {@link #setNumThreads} accepts: 4 per core, at least 8. */
  public static int maxThreads() {
    return NativeRuntime.maxThreads();
  }

  /**
   * Frees the output buffers the fused SE/eSE kernels keep for reuse (at most six; a buffer
   * is reused only once nothing references it). Call after a large workload to return memory.
   */
  public static void releaseCachedBuffers() {
    NativeRuntime.releaseCachedBuffers();
  }

  /** Whether the fused CPU kernels run their AVX2+FMA build (else the baseline x86-64 one). */
  public static boolean fusedKernelsUseAvx2() {
    return NativeRuntime.fusedKernelsUseAvx2();
  }

  /** Seeds libtorch's default generators (parameter initialisation, randn, rand). */
  public static void manualSeed(long seed) {
    NativeRuntime.manualSeed(seed);
  }
}

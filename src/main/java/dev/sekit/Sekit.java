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
   * Returns to the system the memory sekit keeps for reuse. libtorch's CPU allocator in this
   * process is sekit's: a block of 128 KiB or more that a forward, a backward, an optimizer's
   * step or zeroGrad, or a closed tensor frees is kept under its size (once that size has been asked for
   * twice) and handed out again, because a training step or a forward allocates the sizes of
   * the one before it and fresh memory costs a page fault per 4 KiB. What building, loading
   * or preparing a module frees goes back to the system. The cache holds at most
   * {@link #cpuCacheLimit()} bytes. Call after a large workload to give the memory back.
   */
  public static void releaseCachedBuffers() {
    NativeRuntime.releaseCachedBuffers();
  }

  /** Bytes of freed CPU memory the allocator holds for reuse now. */
  public static long cpuCacheBytes() {
    return NativeRuntime.cpuCacheBytes();
  }

  /**
   * The most freed CPU memory the allocator holds for reuse: the environment variable
   * {@code SEKIT_CPU_CACHE_BYTES} when the library loads, else a quarter of the machine's
   * memory up to 4 GiB.
   */
  public static long cpuCacheLimit() {
    return NativeRuntime.cpuCacheLimit();
  }

  /** Sets {@link #cpuCacheLimit()}; 0 turns the cache off. The cache is emptied when it holds more. */
  public static void setCpuCacheLimit(long bytes) {
    if (bytes < 0) {
      throw new IllegalArgumentException("the CPU cache limit must be >= 0 bytes, got " + bytes);
    }
    NativeRuntime.setCpuCacheLimit(bytes);
  }

  /** Whether the fused CPU kernels run their AVX2+FMA build (else the baseline x86-64 one). */
  public static boolean fusedKernelsUseAvx2() {
    return NativeRuntime.fusedKernelsUseAvx2();
  }

  /**
   * Whether float32 convolutions (cuDNN) and matrix products (cuBLAS) on CUDA may round their
   * operands to TF32 (process-wide): PyTorch's {@code torch.backends.cudnn.allow_tf32} and
   * {@code torch.backends.cuda.matmul.allow_tf32}. Until this is called, PyTorch's defaults
   * hold: on for convolutions, off for matrix products. {@code (false, false)} makes every
   * float32 CUDA result a float32 one. No effect on the CPU.
   */
  public static void setAllowTf32(boolean convolutions, boolean matrixProducts) {
    NativeRuntime.setAllowTf32(convolutions, matrixProducts);
  }

  /** Whether float32 convolutions on CUDA may use TF32 (see {@link #setAllowTf32}). */
  public static boolean allowTf32Convolutions() {
    return NativeRuntime.allowTf32Convolutions();
  }

  /** Whether float32 matrix products on CUDA may use TF32 (see {@link #setAllowTf32}). */
  public static boolean allowTf32MatrixProducts() {
    return NativeRuntime.allowTf32MatrixProducts();
  }

  /** Seeds libtorch's default generators (parameter initialisation, randn, rand). */
  public static void manualSeed(long seed) {
    NativeRuntime.manualSeed(seed);
  }
}

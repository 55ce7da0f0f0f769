package dev.sekit;

/**
 * An error reported by the native library (libtorch or the shim): a shape or dtype
 * that libtorch rejects, an allocation that failed, a device error.
 *
 * <p>Mistakes that Java can see before calling native code are reported as
 * {@link IllegalArgumentException}, {@link NullPointerException} or
 * {@link IllegalStateException} instead.
 */
public final class SekitException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The stable error codes of the C ABI. */
  public enum Code {
    /** A null handle, a wrong shape, dtype, rank or device: the caller's mistake. */
    INVALID_ARGUMENT,
    /** An allocation failed (host or device memory). */
    OUT_OF_MEMORY,
    /** A CUDA runtime or driver error. */
    DEVICE,
    /** Anything else the library or libtorch raised. */
    INTERNAL,
    /** A collective of a process group failed or timed out: a peer was lost or is stuck. */
    DISTRIBUTED
  }

  private final Code code;

  public SekitException(Code code, String message) {
    super(message);
    this.code = code;
  }

  /** What kind of error the native side reported. */
  public Code code() {
    return code;
  }
}

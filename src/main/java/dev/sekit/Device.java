package dev.sekit;

/**
 * Where a tensor lives: the CPU, or one CUDA device.
 *
 * @param type CPU or CUDA
 * @param index the CUDA device index (0-based); -1 for the CPU
 */
public record Device(Type type, int index) {

  /** Kinds of device. */
  public enum Type {
    CPU,
    CUDA
  }

  /** The CPU. */
  public static final Device CPU = new Device(Type.CPU, -1);

  public Device {
    java.util.Objects.requireNonNull(type, "type");
    if (type == Type.CPU && index != -1) {
      throw new IllegalArgumentException("the CPU device has index -1, got " + index);
    }
    if (type == Type.CUDA && index < 0) {
      throw new IllegalArgumentException("a CUDA device index must be >= 0, got " + index);
    }
  }

  /** CUDA device {@code index}. */
  public static Device cuda(int index) {
    return new Device(Type.CUDA, index);
  }

  /** CUDA device 0. */
  public static Device cuda() {
    return cuda(0);
  }

  public boolean isCpu() {
    return type == Type.CPU;
  }

  public boolean isCuda() {
    return type == Type.CUDA;
  }

  @Override
  public String toString() {
    return type == Type.CPU ? "cpu" : "cuda:" + index;
  }
}

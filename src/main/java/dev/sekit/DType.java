package dev.sekit;

import java.lang.foreign.ValueLayout;

/** Element types a {@link Tensor} can hold. */
public enum DType {
  FLOAT32(4, "float32", ValueLayout.JAVA_FLOAT),
  FLOAT64(8, "float64", ValueLayout.JAVA_DOUBLE),
  /** IEEE half precision; Java has no primitive for it (see {@link Float#float16ToFloat}). */
  FLOAT16(2, "float16", ValueLayout.JAVA_SHORT),
  /** bfloat16: the upper 16 bits of a float32. */
  BFLOAT16(2, "bfloat16", ValueLayout.JAVA_SHORT),
  INT64(8, "int64", ValueLayout.JAVA_LONG);

  private final int byteSize;
  private final String label;
  private final ValueLayout layout;

  DType(int byteSize, String label, ValueLayout layout) {
    this.byteSize = byteSize;
    this.label = label;
    this.layout = layout;
  }

  /** Bytes per element. */
  public int byteSize() {
    return byteSize;
  }

  /** The value layout of one element (a 16-bit integer for float16 and bfloat16). */
  public ValueLayout layout() {
    return layout;
  }

  /** Whether this is a floating-point type. */
  public boolean isFloatingPoint() {
    return this != INT64;
  }

  @Override
  public String toString() {
    return label;
  }
}

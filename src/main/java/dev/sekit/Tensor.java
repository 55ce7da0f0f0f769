package dev.sekit;

import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeTensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;

/**
 * An n-dimensional array held by libtorch, on the CPU or a CUDA device.
 *
 * <p><b>Lifetime.</b> Every tensor belongs to an {@link Arena}: closing the arena frees
 * the native tensor, and any later use throws {@link IllegalStateException}. A tensor can
 * also be released before its arena closes, with {@link #close()} (a serving loop with a
 * long-lived arena does this for each result, so the arena does not grow). A tensor
 * made by {@link #wrap} views the caller's segment without copying; it (and every
 * tensor computed from it while autograd keeps it) refuses to run once that segment's
 * arena is closed.
 *
 * <p><b>Copies.</b> Only methods whose names say so copy: {@link #copyOf},
 * {@link #copyTo}, {@link #copyFrom}, {@link #to}, {@link #toFloatArray}. {@link #wrap}
 * and {@link #data} never copy.
 *
 * <p><b>Threads.</b> A tensor is not thread-safe. In a confined arena FFM itself refuses
 * other threads; in a shared arena a second thread that uses a tensor (or a module whose
 * state the tensor's autograd graph reaches) while a call runs gets an
 * {@link IllegalStateException}, never undefined behaviour.
 */
public final class Tensor implements AutoCloseable {
  static {
    Bridge.register(new Bridge.Tensors() {
      @Override
      public NativeTensor unwrap(Tensor t) {
        return t.n;
      }

      @Override
      public Tensor wrap(NativeTensor n) {
        return new Tensor(n);
      }
    });
  }

  private final NativeTensor n;

  private Tensor(NativeTensor n) {
    this.n = n;
  }

  // ---------------------------------------------------------------- creation

  /**
   * Views {@code data}, an off-heap segment, as a contiguous tensor of {@code shape}
   * without copying: writes on either side are seen by the other.
   *
   * @param arena owns the tensor handle (closing it frees the handle, never the data)
   * @param data native, writable memory, aligned to the dtype's size, of at least
   *     {@code product(shape) * dtype.byteSize()} bytes; must stay alive while the tensor
   *     is used (native code, autograd and optimizers may write to it)
   * @throws IllegalArgumentException for a heap segment (use {@link #copyOf}), a read-only
   *     segment, a segment too small or misaligned, or a size below 1
   */
  public static Tensor wrap(Arena arena, MemorySegment data, DType dtype, long... shape) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(data, "data");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(shape, "shape");
    if (!data.isNative()) {
      throw new IllegalArgumentException("data is a heap segment; Tensor.wrap needs off-heap "
          + "(native) memory, e.g. from Arena.allocate. To copy a Java array, use Tensor.copyOf");
    }
    if (data.isReadOnly()) {
      throw new IllegalArgumentException("data is a read-only segment; native code may write "
          + "to a tensor's memory, so wrap a writable segment (or copy with Tensor.copyOf)");
    }
    if (!data.scope().isAlive()) {
      throw new IllegalStateException("data's arena is already closed");
    }
    long need = byteSize(shape, dtype);
    if (data.byteSize() < need) {
      throw new IllegalArgumentException("data holds " + data.byteSize() + " bytes but shape "
          + Arrays.toString(shape) + " of " + dtype + " needs " + need);
    }
    if (data.address() % dtype.byteSize() != 0) {
      throw new IllegalArgumentException("data address 0x" + Long.toHexString(data.address())
          + " is not aligned to " + dtype.byteSize() + " bytes as " + dtype + " requires");
    }
    requireOpen(arena);
    return new Tensor(NativeTensor.wrap(arena, data, need, shape, dtype));
  }

  /** A new float32 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(Arena arena, float[] values, long... shape) {
    Objects.requireNonNull(values, "values");
    return copyOf(arena, MemorySegment.ofArray(values), DType.FLOAT32, shape);
  }

  /** A new float64 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(Arena arena, double[] values, long... shape) {
    Objects.requireNonNull(values, "values");
    return copyOf(arena, MemorySegment.ofArray(values), DType.FLOAT64, shape);
  }

  /** A new int64 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(Arena arena, long[] values, long... shape) {
    Objects.requireNonNull(values, "values");
    return copyOf(arena, MemorySegment.ofArray(values), DType.INT64, shape);
  }

  /** A new tensor holding a copy of {@code data} (heap or off-heap), read as {@code dtype}. */
  public static Tensor copyOf(Arena arena, MemorySegment data, DType dtype, long... shape) {
    Objects.requireNonNull(data, "data");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(shape, "shape");
    long need = byteSize(shape, dtype);
    if (data.byteSize() != need) {
      throw new IllegalArgumentException("the values hold " + data.byteSize() / dtype.byteSize()
          + " elements but shape " + Arrays.toString(shape) + " has " + need / dtype.byteSize());
    }
    Tensor t = empty(arena, dtype, Device.CPU, shape);
    MemorySegment.copy(data, 0, t.data(), 0, need);
    return t;
  }

  /** An uninitialised contiguous tensor. */
  public static Tensor empty(Arena arena, DType dtype, Device device, long... shape) {
    return create(arena, NativeTensor.Fill.EMPTY, dtype, device, shape, 0, 0);
  }

  /** A contiguous tensor of zeros. */
  public static Tensor zeros(Arena arena, DType dtype, Device device, long... shape) {
    return create(arena, NativeTensor.Fill.ZEROS, dtype, device, shape, 0, 0);
  }

  /** Standard normal values from libtorch's generator (see {@link Sekit#manualSeed}). */
  public static Tensor randn(Arena arena, DType dtype, Device device, long... shape) {
    return create(arena, NativeTensor.Fill.RANDN, dtype, device, shape, 0, 0);
  }

  /** Uniform values in [low, high). */
  public static Tensor rand(Arena arena, DType dtype, Device device, double low, double high,
      long... shape) {
    return create(arena, NativeTensor.Fill.RAND, dtype, device, shape, low, high);
  }

  private static Tensor create(Arena arena, NativeTensor.Fill fill, DType dtype, Device device, long[] shape,
      double low, double high) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(device, "device");
    Objects.requireNonNull(shape, "shape");
    byteSize(shape, dtype);
    requireOpen(arena);
    return new Tensor(NativeTensor.create(arena, fill, dtype, device, shape, low, high));
  }

  /** Bytes of a contiguous tensor of {@code shape}; checks every size is >= 1 and nothing overflows. */
  private static long byteSize(long[] shape, DType dtype) {
    long bytes = dtype.byteSize();
    for (int i = 0; i < shape.length; i++) {
      if (shape[i] < 1) {
        throw new IllegalArgumentException("shape[" + i + "] is " + shape[i]
            + " in " + Arrays.toString(shape) + "; every size must be >= 1");
      }
      if (bytes > Long.MAX_VALUE / shape[i]) {
        throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " of " + dtype
            + " is too large: its size in bytes overflows a long");
      }
      bytes *= shape[i];
    }
    return bytes;
  }

  private static void requireOpen(Arena arena) {
    if (!arena.scope().isAlive()) {
      throw new IllegalStateException("the arena is already closed");
    }
  }

  // ---------------------------------------------------------------- access

  /** The arena that owns this tensor. */
  public Arena arena() {
    return n.arena();
  }

  public int ndim() {
    return n.ndim();
  }

  /** Sizes of every dimension. */
  public long[] shape() {
    return n.shape();
  }

  /** Size of dimension {@code dim}. */
  public long size(int dim) {
    long s = n.size(dim);
    if (s < 0) {
      throw new IndexOutOfBoundsException("dim " + dim + " out of range for a " + ndim() + "-d tensor");
    }
    return s;
  }

  /** Strides in elements. */
  public long[] strides() {
    return n.strides();
  }

  public long numel() {
    return n.numel();
  }

  public DType dtype() {
    return n.dtype();
  }

  public Device device() {
    return n.device();
  }

  public boolean isContiguous() {
    return n.isContiguous();
  }

  /** Address of the first element in native memory (for diagnostics and zero-copy checks). */
  public long dataAddress() {
    return n.dataAddress();
  }

  /**
   * The tensor's memory as a segment, without copying (CPU tensors only). It spans every
   * element reachable through the strides. The view dies with the tensor: when the tensor is
   * closed or its arena closes, using the view throws {@link IllegalStateException}. A view
   * of a wrapped tensor is a slice of the wrapped segment. A view of a module's parameter
   * keeps the memory it shows alive: after {@code module.to(DType.FLOAT64)} it still works,
   * but shows the old float32 values, no longer the module's; take a new view.
   */
  public MemorySegment data() {
    return n.data();
  }

  /**
   * Copies the values, in row-major order, into {@code dst}, which must be writable and hold
   * exactly {@code numel() * dtype().byteSize()} bytes (heap or off-heap).
   */
  public void copyTo(MemorySegment dst) {
    Objects.requireNonNull(dst, "dst");
    if (dst.isReadOnly()) {
      throw new IllegalArgumentException("dst is a read-only segment; copyTo writes to it");
    }
    long need = numel() * dtype().byteSize();
    if (dst.byteSize() != need) {
      throw new IllegalArgumentException("dst holds " + dst.byteSize() + " bytes but this "
          + dtype() + " tensor of shape " + Arrays.toString(shape()) + " has " + need);
    }
    if (dst.isNative()) {
      n.copyToHost(dst, need);
    } else {
      try (Arena scratch = Arena.ofConfined()) {
        MemorySegment tmp = scratch.allocate(need, 64);
        n.copyToHost(tmp, need);
        MemorySegment.copy(tmp, 0, dst, 0, need);
      }
    }
  }

  /** A copy of the values as a float array (float32 tensors). */
  public float[] toFloatArray() {
    requireDType(DType.FLOAT32, "toFloatArray");
    float[] a = new float[Math.toIntExact(numel())];
    copyTo(MemorySegment.ofArray(a));
    return a;
  }

  /** A copy of the values as a double array (float64 tensors). */
  public double[] toDoubleArray() {
    requireDType(DType.FLOAT64, "toDoubleArray");
    double[] a = new double[Math.toIntExact(numel())];
    copyTo(MemorySegment.ofArray(a));
    return a;
  }

  /** A copy of the values as a long array (int64 tensors). */
  public long[] toLongArray() {
    requireDType(DType.INT64, "toLongArray");
    long[] a = new long[Math.toIntExact(numel())];
    copyTo(MemorySegment.ofArray(a));
    return a;
  }

  private void requireDType(DType want, String what) {
    DType d = dtype();
    if (d != want) {
      throw new IllegalStateException(what + " needs a " + want + " tensor, this one is " + d
          + "; convert it with to(DType." + want.name() + ")");
    }
  }

  /** Copies {@code src}'s values into this tensor (shapes must match; dtype/device may differ). */
  public void copyFrom(Tensor src) {
    Objects.requireNonNull(src, "src");
    n.copyFrom(src.n);
  }

  /** A contiguous copy converted to {@code dtype}, in this tensor's arena and device. */
  public Tensor to(DType dtype) {
    return to(arena(), dtype, device());
  }

  /** A contiguous copy on {@code device}, in this tensor's arena. */
  public Tensor to(Device device) {
    return to(arena(), dtype(), device);
  }

  /** A contiguous copy with the given dtype on the given device, owned by {@code arena}. */
  public Tensor to(Arena arena, DType dtype, Device device) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(device, "device");
    requireOpen(arena);
    return new Tensor(n.to(arena, dtype, device));
  }

  /** The value of a one-element tensor. */
  public double item() {
    return n.item();
  }

  /**
   * The rows of dimension {@code dim} picked by {@code index} (a 1-d int64 tensor), as a new
   * tensor owned by {@code arena} (a gather: the one copy a shuffled batch needs).
   */
  public Tensor indexSelect(Arena arena, int dim, Tensor index) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(index, "index");
    requireOpen(arena);
    return new Tensor(n.indexSelect(arena, dim, index.n));
  }

  /**
   * Rows {@code [start, start + length)} of dimension {@code dim} as a view: no copy, the same
   * memory (so it is bound by the same segments as this tensor). The handle belongs to
   * {@code arena}.
   */
  public Tensor narrow(Arena arena, int dim, long start, long length) {
    Objects.requireNonNull(arena, "arena");
    requireOpen(arena);
    return new Tensor(n.narrow(arena, dim, start, length));
  }

  /**
   * This tensor laid out in {@code format}: itself when it already is, else a copy owned by
   * {@code arena}. Channels-last needs a 4-d tensor.
   */
  public Tensor contiguous(Arena arena, MemoryFormat format) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(format, "format");
    if (isContiguous(format)) {
      return this;
    }
    requireOpen(arena);
    return new Tensor(n.contiguous(arena, format));
  }

  /** Whether this tensor is laid out in {@code format}. */
  public boolean isContiguous(MemoryFormat format) {
    Objects.requireNonNull(format, "format");
    return n.isContiguous(format);
  }

  // ---------------------------------------------------------------- autograd

  /** Marks this leaf tensor as needing its gradient; returns this. */
  public Tensor requiresGrad(boolean on) {
    n.setRequiresGrad(on);
    return this;
  }

  public boolean requiresGrad() {
    return n.requiresGrad();
  }

  /**
   * Back-propagates {@code grad} (same shape, dtype and device as this tensor) through
   * the graph that produced this tensor; gradients add up in the leaves' {@link #grad}.
   */
  public void backward(Tensor grad) {
    Objects.requireNonNull(grad, "grad (use backward() for a one-element tensor)");
    n.backward(grad.n);
  }

  /** Back-propagates from a one-element tensor with gradient 1. */
  public void backward() {
    n.backward(null);
  }

  /** The accumulated gradient, as a new tensor in this tensor's arena, if there is one. */
  public Optional<Tensor> grad() {
    NativeTensor g = n.grad();
    return g == null ? Optional.empty() : Optional.of(new Tensor(g));
  }

  /** Sets the gradient to a copy of {@code grad} (same shape; converted to this dtype). */
  public void setGrad(Tensor grad) {
    Objects.requireNonNull(grad, "grad");
    n.setGrad(grad.n);
  }

  /** Drops the accumulated gradient. */
  public void clearGrad() {
    n.clearGrad();
  }

  // ---------------------------------------------------------------- lifetime

  /** Whether the native tensor is still usable (not closed, its arena open). */
  public boolean isAlive() {
    return n.isAlive();
  }

  /**
   * Frees the native tensor now, before its arena closes. Afterwards every use of this
   * tensor (and of the segments {@link #data} returned) throws {@link IllegalStateException},
   * exactly as after closing the arena; closing twice, or closing the arena later, is
   * harmless. Tensors computed from this one are unaffected (they hold what they need).
   *
   * @throws UnsupportedOperationException for a module's parameter or buffer, or an
   *     optimizer's state, which live as long as their module's arena
   * @throws IllegalStateException when another thread is using the tensor right now
   */
  @Override
  public void close() {
    n.close();
  }

  @Override
  public String toString() {
    if (!isAlive()) {
      return "Tensor[closed]";
    }
    return "Tensor[" + dtype() + ", " + device() + ", shape=" + Arrays.toString(shape()) + "]";
  }
}

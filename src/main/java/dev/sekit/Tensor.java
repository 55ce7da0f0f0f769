package dev.sekit;

import static dev.sekit.internal.Native.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.internal.Native;
import dev.sekit.internal.TensorAccess;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * An n-dimensional array held by libtorch, on the CPU or a CUDA device.
 *
 * <p><b>Lifetime.</b> Every tensor belongs to an {@link Arena}: closing the arena frees
 * the native tensor, and any later use throws {@link IllegalStateException}. A tensor
 * made by {@link #wrap} views the caller's segment without copying; it (and every
 * tensor computed from it while autograd keeps it) refuses to run once that segment's
 * arena is closed.
 *
 * <p><b>Copies.</b> Only methods whose names say so copy: {@link #copyOf},
 * {@link #copyTo}, {@link #copyFrom}, {@link #to}, {@link #toFloatArray}. {@link #wrap}
 * and {@link #data} never copy.
 *
 * <p>A tensor is not thread-safe; confine it to one thread at a time (the arena's rules
 * apply on top).
 */
public final class Tensor {
  static {
    Native.init();
    TensorAccess.set(new TensorAccess() {
      @Override
      public MemorySegment handle(Tensor t) {
        return t.handle();
      }

      @Override
      public Tensor adopt(MemorySegment ptr, Arena arena, List<MemorySegment.Scope> borrowed) {
        return new Tensor(Native.ownTensor(ptr, arena), arena, null, borrowed);
      }

      @Override
      public Tensor wrapOwned(MemorySegment owned, Arena arena, List<MemorySegment.Scope> borrowed) {
        return new Tensor(owned, arena, null, borrowed);
      }

      @Override
      public List<MemorySegment.Scope> borrowed(Tensor t) {
        return t.borrowed;
      }
    });
  }

  private final MemorySegment handle;
  private final Arena arena;
  /** The caller segment this tensor views (kept reachable), or null. */
  private final MemorySegment wrapped;
  /** Scopes of caller memory read by this tensor or its autograd history. */
  private final List<MemorySegment.Scope> borrowed;

  private Tensor(MemorySegment handle, Arena arena, MemorySegment wrapped,
      List<MemorySegment.Scope> borrowed) {
    this.handle = handle;
    this.arena = arena;
    this.wrapped = wrapped;
    this.borrowed = List.copyOf(borrowed);
  }

  // ---------------------------------------------------------------- creation

  /**
   * Views {@code data}, an off-heap segment, as a contiguous tensor of {@code shape}
   * without copying: writes on either side are seen by the other.
   *
   * @param arena owns the tensor handle (closing it frees the handle, never the data)
   * @param data native memory, aligned to the dtype's size, of at least
   *     {@code product(shape) * dtype.byteSize()} bytes; must stay alive while the tensor
   *     is used
   * @throws IllegalArgumentException for a heap segment (use {@link #copyOf}), a segment
   *     too small or misaligned, or a size below 1
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
    long numel = checkShape(shape);
    long need = Math.multiplyExact(numel, dtype.byteSize());
    if (data.byteSize() < need) {
      throw new IllegalArgumentException("data holds " + data.byteSize() + " bytes but shape "
          + Arrays.toString(shape) + " of " + dtype + " needs " + need);
    }
    if (data.address() % dtype.byteSize() != 0) {
      throw new IllegalArgumentException("data address 0x" + Long.toHexString(data.address())
          + " is not aligned to " + dtype.byteSize() + " bytes as " + dtype + " requires");
    }
    checkArena(arena);
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment shp = scratch.allocateFrom(JAVA_LONG, shape);
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_tensor_from_blob(data, need, shp, MemorySegment.NULL, shape.length,
          dtype.code(), out));
      MemorySegment h = Native.ownTensor(out.get(ADDRESS, 0), arena);
      return new Tensor(h, arena, data.asSlice(0, need), List.of(data.scope()));
    }
  }

  /** A new float32 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(Arena arena, float[] values, long... shape) {
    Objects.requireNonNull(values, "values");
    return copyOfHeap(arena, MemorySegment.ofArray(values), DType.FLOAT32, shape);
  }

  /** A new float64 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(Arena arena, double[] values, long... shape) {
    Objects.requireNonNull(values, "values");
    return copyOfHeap(arena, MemorySegment.ofArray(values), DType.FLOAT64, shape);
  }

  /** A new int64 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(Arena arena, long[] values, long... shape) {
    Objects.requireNonNull(values, "values");
    return copyOfHeap(arena, MemorySegment.ofArray(values), DType.INT64, shape);
  }

  /** A new tensor holding a copy of {@code data} (heap or off-heap), read as {@code dtype}. */
  public static Tensor copyOf(Arena arena, MemorySegment data, DType dtype, long... shape) {
    Objects.requireNonNull(data, "data");
    return copyOfHeap(arena, data, dtype, shape);
  }

  private static Tensor copyOfHeap(Arena arena, MemorySegment src, DType dtype, long[] shape) {
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(shape, "shape");
    long numel = checkShape(shape);
    long need = Math.multiplyExact(numel, dtype.byteSize());
    if (src.byteSize() != need) {
      throw new IllegalArgumentException("the values hold " + src.byteSize() / dtype.byteSize()
          + " elements but shape " + Arrays.toString(shape) + " has " + numel);
    }
    Tensor t = empty(arena, dtype, Device.CPU, shape);
    MemorySegment.copy(src, 0, t.data(), 0, need);
    return t;
  }

  /** An uninitialised contiguous tensor. */
  public static Tensor empty(Arena arena, DType dtype, Device device, long... shape) {
    return factory(arena, dtype, device, shape, Kind.EMPTY, 0, 0);
  }

  /** A contiguous tensor of zeros. */
  public static Tensor zeros(Arena arena, DType dtype, Device device, long... shape) {
    return factory(arena, dtype, device, shape, Kind.ZEROS, 0, 0);
  }

  /** Standard normal values from libtorch's generator (see {@link Sekit#manualSeed}). */
  public static Tensor randn(Arena arena, DType dtype, Device device, long... shape) {
    return factory(arena, dtype, device, shape, Kind.RANDN, 0, 0);
  }

  /** Uniform values in [low, high). */
  public static Tensor rand(Arena arena, DType dtype, Device device, double low, double high,
      long... shape) {
    return factory(arena, dtype, device, shape, Kind.RAND, low, high);
  }

  private enum Kind { EMPTY, ZEROS, RANDN, RAND }

  private static Tensor factory(Arena arena, DType dtype, Device device, long[] shape, Kind kind,
      double low, double high) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(device, "device");
    Objects.requireNonNull(shape, "shape");
    checkShape(shape);
    checkArena(arena);
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment shp = scratch.allocateFrom(JAVA_LONG, shape);
      MemorySegment out = Native.outPointer(scratch);
      int dt = device.type().code;
      int di = device.index();
      check(switch (kind) {
        case EMPTY -> sekit_h.sk_tensor_empty(shp, shape.length, dtype.code(), dt, di, out);
        case ZEROS -> sekit_h.sk_tensor_zeros(shp, shape.length, dtype.code(), dt, di, out);
        case RANDN -> sekit_h.sk_tensor_randn(shp, shape.length, dtype.code(), dt, di, out);
        case RAND -> sekit_h.sk_tensor_rand(shp, shape.length, low, high, dtype.code(), dt, di, out);
      });
      return new Tensor(Native.ownTensor(out.get(ADDRESS, 0), arena), arena, null, List.of());
    }
  }

  private static long checkShape(long[] shape) {
    long numel = 1;
    for (int i = 0; i < shape.length; i++) {
      if (shape[i] < 1) {
        throw new IllegalArgumentException("shape[" + i + "] is " + shape[i]
            + " in " + Arrays.toString(shape) + "; every size must be >= 1");
      }
      numel = Math.multiplyExact(numel, shape[i]);
    }
    return numel;
  }

  private static void checkArena(Arena arena) {
    Native.requireOpen(arena, "the arena");
  }

  // ---------------------------------------------------------------- access

  MemorySegment handle() {
    Native.checkAlive(handle, "this tensor");
    for (MemorySegment.Scope s : borrowed) {
      if (!s.isAlive()) {
        throw new IllegalStateException("this tensor reads memory of a segment whose arena was "
            + "closed (it wraps that segment, or was computed from a tensor that does)");
      }
    }
    return handle;
  }

  /** The arena that owns this tensor. */
  public Arena arena() {
    return arena;
  }

  public int ndim() {
    return (int) sekit_h.sk_tensor_ndim(handle());
  }

  /** Sizes of every dimension. */
  public long[] shape() {
    MemorySegment h = handle();
    long[] s = new long[(int) sekit_h.sk_tensor_ndim(h)];
    for (int i = 0; i < s.length; i++) {
      s[i] = sekit_h.sk_tensor_size(h, i);
    }
    return s;
  }

  /** Size of dimension {@code dim}. */
  public long size(int dim) {
    long s = sekit_h.sk_tensor_size(handle(), dim);
    if (s < 0) {
      throw new IndexOutOfBoundsException("dim " + dim + " out of range for a " + ndim() + "-d tensor");
    }
    return s;
  }

  /** Strides in elements. */
  public long[] strides() {
    MemorySegment h = handle();
    long[] s = new long[(int) sekit_h.sk_tensor_ndim(h)];
    for (int i = 0; i < s.length; i++) {
      s[i] = sekit_h.sk_tensor_stride(h, i);
    }
    return s;
  }

  public long numel() {
    return sekit_h.sk_tensor_numel(handle());
  }

  public DType dtype() {
    return DType.ofCode(sekit_h.sk_tensor_dtype(handle()));
  }

  public Device device() {
    MemorySegment h = handle();
    return sekit_h.sk_tensor_device_type(h) == sekit_h.SK_DEVICE_CUDA()
        ? Device.cuda(sekit_h.sk_tensor_device_index(h))
        : Device.CPU;
  }

  public boolean isContiguous() {
    return sekit_h.sk_tensor_is_contiguous(handle()) == 1;
  }

  /** Address of the first element in native memory (for diagnostics and zero-copy checks). */
  public long dataAddress() {
    return sekit_h.sk_tensor_data_ptr(handle()).address();
  }

  /**
   * The tensor's memory as a segment, without copying (CPU tensors only). The view is
   * valid while this tensor's arena is open (for a wrapped tensor: the wrapped segment
   * itself). It spans every element reachable through the strides.
   */
  public MemorySegment data() {
    MemorySegment h = handle();
    if (sekit_h.sk_tensor_device_type(h) != sekit_h.SK_DEVICE_CPU()) {
      throw new IllegalStateException("data() views CPU memory; this tensor is on " + device()
          + ": copy it with to(Device.CPU) or copyTo(segment)");
    }
    long bytes = sekit_h.sk_tensor_span_bytes(h);
    MemorySegment ptr = sekit_h.sk_tensor_data_ptr(h);
    long offset = wrapped == null ? -1 : ptr.address() - wrapped.address();
    if (offset >= 0 && offset + bytes <= wrapped.byteSize()) {
      return wrapped.asSlice(offset, bytes); // a view of the wrapped segment: bound by its arena
    }
    return ptr.reinterpret(bytes, arena, null);
  }

  /**
   * Copies the values, in row-major order, into {@code dst}, which must hold exactly
   * {@code numel() * dtype().byteSize()} bytes (heap or off-heap).
   */
  public void copyTo(MemorySegment dst) {
    Objects.requireNonNull(dst, "dst");
    MemorySegment h = handle();
    long need = numel() * dtype().byteSize();
    if (dst.byteSize() != need) {
      throw new IllegalArgumentException("dst holds " + dst.byteSize() + " bytes but this "
          + dtype() + " tensor of shape " + Arrays.toString(shape()) + " has " + need);
    }
    if (dst.isNative()) {
      check(sekit_h.sk_tensor_copy_to_host(h, dst, need));
    } else {
      try (Arena scratch = Arena.ofConfined()) {
        MemorySegment tmp = scratch.allocate(need, 64);
        check(sekit_h.sk_tensor_copy_to_host(h, tmp, need));
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
    check(sekit_h.sk_tensor_copy_(handle(), src.handle()));
  }

  /** A contiguous copy converted to {@code dtype}, in this tensor's arena and device. */
  public Tensor to(DType dtype) {
    return to(arena, dtype, device());
  }

  /** A contiguous copy on {@code device}, in this tensor's arena. */
  public Tensor to(Device device) {
    return to(arena, dtype(), device);
  }

  /** A contiguous copy with the given dtype on the given device, owned by {@code arena}. */
  public Tensor to(Arena arena, DType dtype, Device device) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(device, "device");
    checkArena(arena);
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_tensor_to(handle(), dtype.code(), device.type().code, device.index(), out));
      return new Tensor(Native.ownTensor(out.get(ADDRESS, 0), arena), arena, null, List.of());
    }
  }

  /** The value of a one-element tensor. */
  public double item() {
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = scratch.allocate(JAVA_DOUBLE);
      check(sekit_h.sk_tensor_item(handle(), out));
      return out.get(JAVA_DOUBLE, 0);
    }
  }

  /**
   * The rows of dimension {@code dim} picked by {@code index} (a 1-d int64 tensor), as a new
   * tensor owned by {@code arena} (a gather: the one copy a shuffled batch needs).
   */
  public Tensor indexSelect(Arena arena, int dim, Tensor index) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(index, "index");
    checkArena(arena);
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_tensor_index_select(handle(), dim, index.handle(), out));
      // autograd keeps `index` (and reads this tensor's history) for the backward
      return new Tensor(Native.ownTensor(out.get(ADDRESS, 0), arena), arena, null,
          TensorAccess.union(borrowed, index.borrowed));
    }
  }

  /**
   * Rows {@code [start, start + length)} of dimension {@code dim} as a view: no copy, the same
   * memory (so it is bound by the same segments as this tensor). The handle belongs to
   * {@code arena}.
   */
  public Tensor narrow(Arena arena, int dim, long start, long length) {
    Objects.requireNonNull(arena, "arena");
    checkArena(arena);
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_tensor_narrow(handle(), dim, start, length, out));
      return new Tensor(Native.ownTensor(out.get(ADDRESS, 0), arena), arena, wrapped, borrowed);
    }
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
    checkArena(arena);
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_tensor_contiguous(handle(), format.code(), out));
      return new Tensor(Native.ownTensor(out.get(ADDRESS, 0), arena), arena, null, borrowed);
    }
  }

  /** Whether this tensor is laid out in {@code format}. */
  public boolean isContiguous(MemoryFormat format) {
    Objects.requireNonNull(format, "format");
    return sekit_h.sk_tensor_is_format(handle(), format.code()) == 1;
  }

  // ---------------------------------------------------------------- autograd

  /** Marks this leaf tensor as needing its gradient; returns this. */
  public Tensor requiresGrad(boolean on) {
    check(sekit_h.sk_tensor_set_requires_grad(handle(), on ? 1 : 0));
    return this;
  }

  public boolean requiresGrad() {
    return sekit_h.sk_tensor_requires_grad(handle()) == 1;
  }

  /**
   * Back-propagates {@code grad} (same shape, dtype and device as this tensor) through
   * the graph that produced this tensor; gradients add up in the leaves' {@link #grad}.
   */
  public void backward(Tensor grad) {
    Objects.requireNonNull(grad, "grad (use backward() for a one-element tensor)");
    check(sekit_h.sk_tensor_backward(handle(), grad.handle()));
  }

  /** Back-propagates from a one-element tensor with gradient 1. */
  public void backward() {
    check(sekit_h.sk_tensor_backward(handle(), MemorySegment.NULL));
  }

  /** The accumulated gradient, as a new tensor in this tensor's arena, if there is one. */
  public Optional<Tensor> grad() {
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_tensor_grad(handle(), out));
      MemorySegment p = out.get(ADDRESS, 0);
      if (p.address() == 0) {
        return Optional.empty();
      }
      return Optional.of(new Tensor(Native.ownTensor(p, arena), arena, null, List.of()));
    }
  }

  /** Sets the gradient to a copy of {@code grad} (same shape; converted to this dtype). */
  public void setGrad(Tensor grad) {
    Objects.requireNonNull(grad, "grad");
    check(sekit_h.sk_tensor_set_grad(handle(), grad.handle()));
  }

  /** Drops the accumulated gradient. */
  public void clearGrad() {
    check(sekit_h.sk_tensor_clear_grad(handle()));
  }

  /** Whether the native tensor is still usable (its arena is open). */
  public boolean isAlive() {
    return handle.scope().isAlive();
  }

  @Override
  public String toString() {
    if (!isAlive()) {
      return "Tensor[closed]";
    }
    return "Tensor[" + dtype() + ", " + device() + ", shape=" + Arrays.toString(shape()) + "]";
  }
}

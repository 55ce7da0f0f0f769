package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * One native tensor ({@code sk_tensor*}) and every call on it: the door through which
 * {@link dev.sekit.Tensor} reaches libsekit. Each call first checks what must hold for any
 * use of native memory, in this order:
 *
 * <ul>
 *   <li><b>closed</b>: released early ({@link #close}) or its arena closed;
 *   <li><b>borrowed memory</b>: every caller segment it (or its autograd graph) reads is alive;
 *   <li><b>other threads</b>: confined arenas are checked by FFM itself; beyond that its
 *       {@link Guard}s refuse a second thread while a call runs;
 *   <li><b>replaced storage</b>: a view of a module's or optimizer's state ({@link #data})
 *       pins the memory it views, so replacing the storage (a dtype change) cannot free it;
 *   <li><b>read-only destinations</b> are refused wherever native code writes to a segment.
 * </ul>
 */
public final class NativeTensor {
  private static final Guard[] NO_GUARDS = {};

  private final Owner.Handle handle;
  /** The native pointer, scoped to the owning arena: FFM refuses it once the arena closes. */
  private final MemorySegment segment;
  private final Arena arena;
  /** Scopes of caller memory read by this tensor or its autograd graph. */
  private final List<MemorySegment.Scope> borrowed;
  /** The caller segment this tensor views (kept reachable), or null. */
  private final MemorySegment wrapped;
  private final Guard[] guards;
  /** Aliases a module's or an optimizer's state: its storage may be replaced; not closeable. */
  private final boolean state;
  /** The view of state memory last pinned by {@link #data}, and the address it pinned. */
  private long pinnedAddress;

  private NativeTensor(Owner.Handle handle, MemorySegment segment, Arena arena, List<MemorySegment.Scope> borrowed,
      MemorySegment wrapped, Guard[] guards, boolean state) {
    this.handle = handle;
    this.segment = segment;
    this.arena = arena;
    this.borrowed = borrowed;
    this.wrapped = wrapped;
    this.guards = guards;
    this.state = state;
  }

  /** What a new tensor inherits from the tensors it was computed from. */
  record Origin(List<MemorySegment.Scope> borrowed, MemorySegment wrapped, Guard[] guards, boolean state) {
    static final Origin FRESH = new Origin(List.of(), null, NO_GUARDS, false);

    /** A result whose graph reads {@code inputs} (their memory and their guards). */
    static Origin of(NativeTensor... inputs) {
      List<MemorySegment.Scope> b = new ArrayList<>();
      List<Guard[]> g = new ArrayList<>();
      for (NativeTensor t : inputs) {
        for (MemorySegment.Scope s : t.borrowed) {
          if (!b.contains(s)) {
            b.add(s);
          }
        }
        g.add(t.guards);
      }
      return new Origin(List.copyOf(b), null, Guard.union(g.toArray(Guard[][]::new)), false);
    }

    Origin withGuards(Guard[] more) {
      return new Origin(borrowed, wrapped, Guard.union(guards, more), state);
    }
  }

  /**
   * Takes ownership of a tensor the library just returned: {@code arena} will free it. The
   * tensor gets a guard of its own in front of those it inherits.
   */
  static NativeTensor adopt(MemorySegment ptr, Arena arena, Origin origin) {
    Owner.Handle h = Owner.adopt(arena, ptr.address(), Owner.Kind.TENSOR);
    MemorySegment seg;
    try {
      seg = ptr.reinterpret(arena, null);
    } catch (RuntimeException e) {
      h.release();
      throw e;
    }
    Guard[] g = origin.state ? origin.guards : Guard.with(new Guard("this tensor"), origin.guards);
    return new NativeTensor(h, seg, arena, origin.borrowed, origin.wrapped, g, origin.state);
  }

  /** The tensors at {@code out[0..n)}, each owned by {@code arena}; on failure none leaks. */
  static List<NativeTensor> adoptAll(MemorySegment out, int n, Arena arena, Origin origin) {
    List<NativeTensor> r = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      try {
        r.add(adopt(out.getAtIndex(ADDRESS, i), arena, origin)); // frees out[i] itself on failure
      } catch (RuntimeException e) {
        for (int j = i + 1; j < n; j++) {
          sekit_h.sk_tensor_free(out.getAtIndex(ADDRESS, j));
        }
        throw e;
      }
    }
    return r;
  }

  // ------------------------------------------------------------------ creation

  /** Views {@code data} (native, writable, alive, aligned, large enough: checked by the caller). */
  public static NativeTensor wrap(Arena arena, MemorySegment data, long bytes, long[] shape, DType dtype) {
    requireWritable(data, "data");
    Owner.of(arena);
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_tensor_from_blob(data, bytes, f.longs(shape), MemorySegment.NULL, shape.length,
          Abi.code(dtype), out));
      MemorySegment view = data.asSlice(0, bytes);
      return adopt(out.get(ADDRESS, 0), arena, new Origin(List.of(data.scope()), view, NO_GUARDS, false));
    }
  }

  /** Kinds of new tensors. */
  public enum Fill { EMPTY, ZEROS, RANDN, RAND }

  /** A new contiguous tensor owned by {@code arena}. */
  public static NativeTensor create(Arena arena, Fill fill, DType dtype, Device device, long[] shape, double low,
      double high) {
    Owner.of(arena);
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment shp = f.longs(shape);
      MemorySegment out = f.pointer();
      int dt = Abi.code(dtype);
      int type = Abi.deviceType(device);
      int index = device.index();
      Calls.check(switch (fill) {
        case EMPTY -> sekit_h.sk_tensor_empty(shp, shape.length, dt, type, index, out);
        case ZEROS -> sekit_h.sk_tensor_zeros(shp, shape.length, dt, type, index, out);
        case RANDN -> sekit_h.sk_tensor_randn(shp, shape.length, dt, type, index, out);
        case RAND -> sekit_h.sk_tensor_rand(shp, shape.length, low, high, dt, type, index, out);
      });
      return adopt(out.get(ADDRESS, 0), arena, Origin.FRESH);
    }
  }

  // ------------------------------------------------------------------ the checks

  /**
   * Checks this tensor may be used now and takes its guards; pair with {@link #exit} in a
   * finally block. Returns the pointer to pass to the library.
   */
  MemorySegment enter() {
    if (!segment.scope().isAlive()) {
      throw new IllegalStateException(state
          ? "this tensor was closed: it belongs to a module or optimizer whose arena has been closed"
          : "this tensor was closed: the arena that owns it has been closed");
    }
    if (handle.released()) {
      throw new IllegalStateException("this tensor was closed (Tensor.close())");
    }
    if (!segment.isAccessibleBy(Thread.currentThread())) {
      throw new WrongThreadException("this tensor belongs to a confined arena of another thread; use it on "
          + "that thread, or make it in a shared arena (Arena.ofShared()) to hand it between threads");
    }
    for (MemorySegment.Scope s : borrowed) {
      if (!s.isAlive()) {
        throw new IllegalStateException("this tensor reads memory of a segment whose arena was "
            + "closed (it wraps that segment, or was computed from a tensor that does)");
      }
    }
    Guard.enter(guards);
    if (handle.released()) { // closed by another thread between the check above and the guard
      Guard.exit(guards);
      throw new IllegalStateException("this tensor was closed (Tensor.close())");
    }
    return segment;
  }

  void exit() {
    Guard.exit(guards);
  }

  /** Refuses a segment native code would write to when it is read-only. */
  static void requireWritable(MemorySegment s, String name) {
    if (s.isReadOnly()) {
      throw new IllegalArgumentException(name + " is a read-only segment, and native code would write to it; "
          + "pass a writable segment (or copy it first)");
    }
  }

  /** Whether this tensor may still be used. */
  public boolean isAlive() {
    return !handle.released() && segment.scope().isAlive();
  }

  public Arena arena() {
    return arena;
  }

  /** The guards a result computed from this tensor inherits. */
  Guard[] guards() {
    return guards;
  }

  // ------------------------------------------------------------------ metadata

  public long[] shape() {
    MemorySegment h = enter();
    try {
      long[] s = new long[(int) sekit_h.sk_tensor_ndim(h)];
      for (int i = 0; i < s.length; i++) {
        s[i] = sekit_h.sk_tensor_size(h, i);
      }
      return s;
    } finally {
      exit();
    }
  }

  public long[] strides() {
    MemorySegment h = enter();
    try {
      long[] s = new long[(int) sekit_h.sk_tensor_ndim(h)];
      for (int i = 0; i < s.length; i++) {
        s[i] = sekit_h.sk_tensor_stride(h, i);
      }
      return s;
    } finally {
      exit();
    }
  }

  public int ndim() {
    MemorySegment h = enter();
    try {
      return (int) sekit_h.sk_tensor_ndim(h);
    } finally {
      exit();
    }
  }

  /** Size of {@code dim}, or -1 when out of range. */
  public long size(int dim) {
    MemorySegment h = enter();
    try {
      return sekit_h.sk_tensor_size(h, dim);
    } finally {
      exit();
    }
  }

  public long numel() {
    MemorySegment h = enter();
    try {
      return sekit_h.sk_tensor_numel(h);
    } finally {
      exit();
    }
  }

  public DType dtype() {
    MemorySegment h = enter();
    try {
      return Abi.dtype(sekit_h.sk_tensor_dtype(h));
    } finally {
      exit();
    }
  }

  public Device device() {
    MemorySegment h = enter();
    try {
      return Abi.device(sekit_h.sk_tensor_device_type(h), sekit_h.sk_tensor_device_index(h));
    } finally {
      exit();
    }
  }

  public boolean isContiguous() {
    MemorySegment h = enter();
    try {
      return sekit_h.sk_tensor_is_contiguous(h) == 1;
    } finally {
      exit();
    }
  }

  public boolean isContiguous(MemoryFormat format) {
    MemorySegment h = enter();
    try {
      return sekit_h.sk_tensor_is_format(h, Abi.code(format)) == 1;
    } finally {
      exit();
    }
  }

  public boolean requiresGrad() {
    MemorySegment h = enter();
    try {
      return sekit_h.sk_tensor_requires_grad(h) == 1;
    } finally {
      exit();
    }
  }

  public long dataAddress() {
    MemorySegment h = enter();
    try {
      return sekit_h.sk_tensor_data_ptr(h).address();
    } finally {
      exit();
    }
  }

  // ------------------------------------------------------------------ memory

  /**
   * The tensor's memory as a segment, without copying (CPU only). The view dies when this
   * tensor is closed or its arena closes; a view of caller memory is a slice of that memory.
   * A view of module or optimizer state pins the memory it shows, so it stays valid (and
   * shows the old values) after the module converts its parameters.
   */
  public MemorySegment data() {
    MemorySegment h = enter();
    try {
      if (sekit_h.sk_tensor_device_type(h) != sekit_h.SK_DEVICE_CPU()) {
        throw new IllegalStateException("data() views CPU memory; this tensor is on "
            + Abi.device(sekit_h.sk_tensor_device_type(h), sekit_h.sk_tensor_device_index(h))
            + ": copy it with to(Device.CPU) or copyTo(segment)");
      }
      long bytes = sekit_h.sk_tensor_span_bytes(h);
      long address = sekit_h.sk_tensor_data_ptr(h).address();
      if (wrapped != null) {
        long offset = address - wrapped.address();
        if (offset >= 0 && offset + bytes <= wrapped.byteSize()) {
          return wrapped.asSlice(offset, bytes); // caller memory: bound by the caller's arena
        }
      }
      Arena views = handle.views();
      if (state && pinnedAddress != address) {
        try (Scratch.Frame f = Scratch.frame()) {
          MemorySegment out = f.pointer();
          Calls.check(sekit_h.sk_tensor_detach(h, out));
          out.get(ADDRESS, 0).reinterpret(views, sekit_h::sk_tensor_free);
        }
        pinnedAddress = address;
      }
      return MemorySegment.ofAddress(address).reinterpret(bytes, views, null);
    } finally {
      exit();
    }
  }

  /** Copies the values in row-major order to {@code dst} (native, writable, exact size). */
  public void copyToHost(MemorySegment dst, long bytes) {
    requireWritable(dst, "dst");
    MemorySegment h = enter();
    try {
      Calls.check(sekit_h.sk_tensor_copy_to_host(h, dst, bytes));
    } finally {
      exit();
    }
  }

  /** Copies {@code src}'s values into this tensor (not recorded by autograd). */
  public void copyFrom(NativeTensor src) {
    MemorySegment h = enter();
    try {
      MemorySegment s = src.enter();
      try {
        Calls.check(sekit_h.sk_tensor_copy_(h, s));
      } finally {
        src.exit();
      }
    } finally {
      exit();
    }
  }

  /** A contiguous copy with {@code dtype} on {@code device}, owned by {@code owner}. */
  public NativeTensor to(Arena owner, DType dtype, Device device) {
    Owner.of(owner);
    MemorySegment h = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_tensor_to(h, Abi.code(dtype), Abi.deviceType(device), device.index(), out));
      return adopt(out.get(ADDRESS, 0), owner, Origin.FRESH);
    } finally {
      exit();
    }
  }

  public double item() {
    MemorySegment h = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.oneDouble();
      Calls.check(sekit_h.sk_tensor_item(h, out));
      return out.get(JAVA_DOUBLE, 0);
    } finally {
      exit();
    }
  }

  /** A gather along {@code dim}; autograd keeps {@code index} for the backward. */
  public NativeTensor indexSelect(Arena owner, int dim, NativeTensor index) {
    Owner.of(owner);
    MemorySegment h = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      MemorySegment i = index.enter();
      try {
        Calls.check(sekit_h.sk_tensor_index_select(h, dim, i, out));
      } finally {
        index.exit();
      }
      return adopt(out.get(ADDRESS, 0), owner, Origin.of(this, index));
    } finally {
      exit();
    }
  }

  /** A view of rows [start, start + length) of {@code dim}: the same memory. */
  public NativeTensor narrow(Arena owner, int dim, long start, long length) {
    Owner.of(owner);
    MemorySegment h = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_tensor_narrow(h, dim, start, length, out));
      Origin o = Origin.of(this);
      return adopt(out.get(ADDRESS, 0), owner, new Origin(o.borrowed(), wrapped, o.guards(), false));
    } finally {
      exit();
    }
  }

  /** This tensor laid out in {@code format} (a copy; the caller checks it is not already). */
  public NativeTensor contiguous(Arena owner, MemoryFormat format) {
    Owner.of(owner);
    MemorySegment h = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_tensor_contiguous(h, Abi.code(format), out));
      return adopt(out.get(ADDRESS, 0), owner, Origin.of(this));
    } finally {
      exit();
    }
  }

  // ------------------------------------------------------------------ autograd

  public void setRequiresGrad(boolean on) {
    MemorySegment h = enter();
    try {
      Calls.check(sekit_h.sk_tensor_set_requires_grad(h, Abi.bool(on)));
    } finally {
      exit();
    }
  }

  /** Back-propagates {@code grad}, or 1 for a one-element tensor when {@code grad} is null. */
  public void backward(NativeTensor grad) {
    MemorySegment h = enter();
    try {
      if (grad == null) {
        Calls.check(sekit_h.sk_tensor_backward(h, MemorySegment.NULL));
      } else {
        MemorySegment g = grad.enter();
        try {
          Calls.check(sekit_h.sk_tensor_backward(h, g));
        } finally {
          grad.exit();
        }
      }
    } finally {
      exit();
    }
  }

  /** The accumulated gradient as a new tensor in this tensor's arena, or null. */
  public NativeTensor grad() {
    MemorySegment h = enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_tensor_grad(h, out));
      MemorySegment p = out.get(ADDRESS, 0);
      return p.address() == 0 ? null : adopt(p, arena, Origin.FRESH.withGuards(guards));
    } finally {
      exit();
    }
  }

  public void setGrad(NativeTensor grad) {
    MemorySegment h = enter();
    try {
      MemorySegment g = grad.enter();
      try {
        Calls.check(sekit_h.sk_tensor_set_grad(h, g));
      } finally {
        grad.exit();
      }
    } finally {
      exit();
    }
  }

  public void clearGrad() {
    MemorySegment h = enter();
    try {
      Calls.check(sekit_h.sk_tensor_clear_grad(h));
    } finally {
      exit();
    }
  }

  // ------------------------------------------------------------------ early release

  /**
   * Frees the native tensor now (idempotent); afterwards every use throws
   * {@link IllegalStateException}, as after closing its arena, and views of its memory die.
   */
  public void close() {
    if (state) {
      throw new UnsupportedOperationException("this tensor is part of a module's or optimizer's state "
          + "and is freed with that module's arena, not on its own");
    }
    if (!isAlive()) {
      return;
    }
    Guard.enter(guards);
    try {
      handle.release();
    } finally {
      Guard.exit(guards);
    }
  }

  @Override
  public String toString() {
    return isAlive() ? "NativeTensor@" + Long.toHexString(handle.address) : "NativeTensor[closed]";
  }
}

package dev.sekit.internal;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.WeakReference;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * The native handles that one {@link Arena} owns. Each arena that owns handles gets one
 * {@code Owner} and registers one cleanup: closing the arena frees every handle still live,
 * in one pass. A handle released early ({@link Handle#release}) leaves the list at once, so
 * a long-lived arena does not grow with handles that were closed one by one (a cleanup per
 * handle would: FFM keeps every cleanup until its arena closes).
 *
 * <p>The owner keeps raw addresses only, never a segment of its arena, and its scope only
 * weakly, so that an {@link Arena#ofAuto() automatic} arena can still be collected. Closing
 * an arena takes its entry out of the map at once: a serving loop that opens an arena per
 * call then leaves no stale weak entries for the collector to clear (they cost about 1 µs a
 * call).
 */
final class Owner {
  /** The free function of each kind of handle. */
  enum Kind {
    TENSOR, MODULE, OPTIMIZER, PROCESS_GROUP, DDP;

    void free(long address) {
      MemorySegment p = MemorySegment.ofAddress(address);
      switch (this) {
        case TENSOR -> sekit_h.sk_tensor_free(p);
        case MODULE -> sekit_h.sk_module_free(p);
        case OPTIMIZER -> sekit_h.sk_optimizer_free(p);
        case PROCESS_GROUP -> sekit_h.sk_process_group_free(p);
        case DDP -> sekit_h.sk_ddp_free(p);
      }
    }
  }

  private static final Map<MemorySegment.Scope, Owner> OWNERS = new WeakHashMap<>();
  /** Never started: a segment is accessible by it only when its arena is not confined. */
  private static final Thread PROBE = new Thread(() -> { }, "sekit-confinement-probe");

  /** Whether only the arena's own thread may use it (views then get confined arenas too). */
  private final boolean confined;
  /** The arena's scope, the key of this owner in {@link #OWNERS}. */
  private final WeakReference<MemorySegment.Scope> scope;
  private final Handle list = new Handle(this, 0, Kind.TENSOR); // sentinel of a ring
  private boolean closed; // guarded by list

  private Owner(boolean confined, MemorySegment.Scope scope) {
    this.confined = confined;
    this.scope = new WeakReference<>(scope);
    list.prev = list;
    list.next = list;
  }

  /** The owner of {@code arena}'s handles, made on first use. */
  static Owner of(Arena arena) {
    NativeLoader.ensureLoaded(); // every native object is made through here
    MemorySegment.Scope scope = arena.scope();
    synchronized (OWNERS) {
      Owner o = OWNERS.get(scope);
      if (o == null) {
        if (!scope.isAlive()) {
          throw new IllegalStateException("the arena is already closed");
        }
        MemorySegment probe = MemorySegment.NULL.reinterpret(arena, null);
        Owner fresh = new Owner(!probe.isAccessibleBy(PROBE), scope);
        // The one cleanup of this arena; the lambda holds the owner only.
        MemorySegment.NULL.reinterpret(arena, ignored -> fresh.closeAll());
        OWNERS.put(scope, fresh);
        o = fresh;
      }
      return o;
    }
  }

  /**
   * {@link #adopt(long, Kind)} by {@code arena}'s owner, for a result whose arena was not
   * looked up before the native call: if the arena closed meanwhile (its owner is gone from
   * the map), the object is freed at once and {@link IllegalStateException} thrown.
   */
  static Handle adopt(Arena arena, long address, Kind kind) {
    Owner o;
    try {
      o = of(arena);
    } catch (RuntimeException e) {
      kind.free(address);
      if (!arena.scope().isAlive()) {
        throw new IllegalStateException("the arena was closed while the result was made");
      }
      throw e;
    }
    return o.adopt(address, kind);
  }

  /** How many arenas own handles now (closed arenas leave at once). */
  static int liveOwners() {
    synchronized (OWNERS) {
      return OWNERS.size();
    }
  }

  /**
   * Takes ownership of the native object at {@code address}: from now on it is freed when the
   * arena closes, or earlier by {@link Handle#release}. If the arena closed meanwhile, the
   * object is freed at once and {@link IllegalStateException} thrown.
   */
  Handle adopt(long address, Kind kind) {
    Handle h = new Handle(this, address, kind);
    synchronized (list) {
      if (!closed) {
        h.next = list.next;
        h.prev = list;
        list.next.prev = h;
        list.next = h;
        return h;
      }
    }
    kind.free(address);
    throw new IllegalStateException("the arena was closed while the result was made");
  }

  private void closeAll() {
    MemorySegment.Scope s = scope.get(); // null once an automatic arena was collected
    if (s != null) {
      synchronized (OWNERS) {
        OWNERS.remove(s);
      }
    }
    Handle first;
    synchronized (list) {
      closed = true;
      first = list.next;
      list.next = list;
      list.prev = list;
    }
    for (Handle h = first; h != list; h = h.next) {
      h.dispose();
    }
  }

  /** One owned native object. */
  static final class Handle {
    private final Owner owner;
    final long address;
    private final Kind kind;
    private Handle prev;
    private Handle next;
    private volatile boolean released;
    /** Arena of the segments that view this object's memory; closed with it. */
    private Arena views;

    private Handle(Owner owner, long address, Kind kind) {
      this.owner = owner;
      this.address = address;
      this.kind = kind;
    }

    /** Whether {@link #release} freed it (closing the arena is seen through the segment). */
    boolean released() {
      return released;
    }

    /** Frees the native object now; false when it was already freed. */
    boolean release() {
      synchronized (owner.list) {
        if (released || owner.closed) {
          return false;
        }
        prev.next = next;
        next.prev = prev;
        prev = null;
        next = null;
      }
      dispose();
      return true;
    }

    /** The arena for views of this object's memory (made on first use). */
    Arena views() {
      if (views == null) {
        views = owner.confined ? Arena.ofConfined() : Arena.ofShared();
      }
      return views;
    }

    private void dispose() {
      released = true;
      if (views != null) {
        try {
          views.close();
        } catch (RuntimeException e) {
          // A view is being read by another thread right now: its memory must outlive it,
          // so this object is left allocated (a leak, never a crash).
          return;
        }
      }
      kind.free(address);
    }
  }
}

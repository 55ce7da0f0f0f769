package dev.sekit.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Refuses concurrent use of native state that is not thread-safe. A module, an optimizer and
 * every tensor have one; a tensor also carries the guards of the modules whose state its
 * autograd graph reaches, so that a backward cannot race a {@code zeroGrad()} of the same
 * module. A call takes every guard of its objects for its duration: a second thread that
 * arrives meanwhile gets an {@link IllegalStateException} at once (no blocking, so no
 * deadlock), while the same thread may re-enter. Uncontended, a guard costs one CAS.
 */
public final class Guard {
  private static final Guard[] NONE = new Guard[0];

  private final String what;
  private final AtomicReference<Thread> owner = new AtomicReference<>();
  private int depth; // written by the owner only

  /** @param what names the object in messages, e.g. "this module (VoVNet)" */
  public Guard(String what) {
    this.what = what;
  }

  private void acquire() {
    Thread me = Thread.currentThread();
    Thread held = owner.get();
    if (held == me) {
      depth++;
      return;
    }
    if (held != null || !owner.compareAndSet(null, me)) {
      Thread other = owner.get();
      throw new IllegalStateException(what + " is in use by another thread ("
          + (other == null ? "that has just finished" : other.getName()) + "): sekit modules and "
          + "tensors are not thread-safe; give each thread its own, or hand them over between calls");
    }
    depth = 1;
  }

  private void release() {
    if (--depth == 0) {
      owner.set(null);
    }
  }

  /** Takes every guard of {@code guards}, or none when one is held by another thread. */
  public static void enter(Guard[] guards) {
    int i = 0;
    try {
      for (; i < guards.length; i++) {
        guards[i].acquire();
      }
    } catch (RuntimeException e) {
      while (--i >= 0) {
        guards[i].release();
      }
      throw e;
    }
  }

  /** Releases what {@link #enter} took. */
  public static void exit(Guard[] guards) {
    for (int i = guards.length - 1; i >= 0; i--) {
      guards[i].release();
    }
  }

  /** a ∪ b ∪ ..., without repeats, in order. */
  public static Guard[] union(Guard[]... sets) {
    if (sets.length == 1) {
      return sets[0];
    }
    List<Guard> all = new ArrayList<>();
    for (Guard[] s : sets) {
      for (Guard g : s) {
        if (!all.contains(g)) {
          all.add(g);
        }
      }
    }
    return all.isEmpty() ? NONE : all.toArray(NONE);
  }

  /** {@code own} followed by {@code inherited}. */
  public static Guard[] with(Guard own, Guard[] inherited) {
    return union(new Guard[] {own}, inherited);
  }
}

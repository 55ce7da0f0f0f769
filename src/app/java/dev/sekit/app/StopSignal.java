package dev.sekit.app;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

/**
 * Ctrl-C / SIGTERM for a training loop: the shutdown hook sets {@link #getAsBoolean} and then
 * waits (up to two minutes) for {@link #close} so that the loop can write its last checkpoint.
 * Closing after a normal end removes the hook.
 */
final class StopSignal implements BooleanSupplier, AutoCloseable {
  private final AtomicBoolean stop = new AtomicBoolean();
  private final CountDownLatch done = new CountDownLatch(1);
  private final Thread hook;

  StopSignal() {
    hook = new Thread(() -> {
      stop.set(true);
      try {
        done.await(120, TimeUnit.SECONDS); // let the loop write its last checkpoint
      } catch (InterruptedException ignored) {
        Thread.currentThread().interrupt();
      }
    }, "sekit-stop");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /** Whether a stop was asked for. */
  @Override
  public boolean getAsBoolean() {
    return stop.get();
  }

  @Override
  public void close() {
    done.countDown();
    if (!stop.get()) {
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException ignored) {
        // already shutting down
      }
    }
  }
}

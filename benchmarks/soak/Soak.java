import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Tensor;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Soak: many small inference calls (an OSA block with eSE on [1, 64, 7, 7], no grad) in the
 * three ways a server uses sekit, printing calls per second and resident-memory growth per
 * call over the second half of the run (the first half warms caches, the JIT and the heap).
 *
 *   per-call arena      try (Arena a = Arena.ofConfined()) { forward ... }
 *   long-lived arena    one arena for the whole run, each result closed with Tensor.close()
 *   threads             4 threads, each with its own module and per-call arenas
 *
 *   java --enable-native-access=ALL-UNNAMED -cp ... benchmarks/soak/Soak.java [calls] [threads]
 */
public class Soak {
  /** Runs {@code n} calls. */
  interface Calls {
    void run(long n) throws Exception;
  }

  /** {@code one} in a loop. */
  static Calls loop(Runnable one) {
    return n -> {
      for (long i = 0; i < n; i++) {
        one.run();
      }
    };
  }

  static long rss() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
      }
    }
    throw new IllegalStateException("no VmRSS");
  }

  static void measure(String name, long calls, Calls run) throws Exception {
    long half = calls / 2;
    run.run(half);
    System.gc();
    long rss0 = rss();
    long t0 = System.nanoTime();
    run.run(calls - half);
    double secs = (System.nanoTime() - t0) / 1e9;
    System.gc();
    long grown = rss() - rss0;
    System.out.printf(Locale.ROOT, "| %s | %,d | %,.0f | %+.1f MiB | %+.2f |%n", name, calls - half,
        (calls - half) / secs, grown / 1048576.0, (double) grown / (calls - half));
  }

  public static void main(String[] args) throws Exception {
    long calls = args.length > 0 ? Long.parseLong(args[0]) : 2_000_000;
    int threads = args.length > 1 ? Integer.parseInt(args[1]) : 4;
    System.out.printf(Locale.ROOT, "soak: EffectiveSqueezeExcitation(64) on [1, 64, 7, 7], no grad, %,d calls per row (half warm-up, half measured)%n%n", calls);
    System.out.println("| pattern | measured calls | calls/s | RSS growth | bytes per call |");
    System.out.println("|---|---|---|---|---|");
    try (Arena model = Arena.ofConfined()) {
      EffectiveSqueezeExcitation block = EffectiveSqueezeExcitation.of(model, 64);
      block.eval();
      measure("per-call arena", calls, loop(() -> {
        try (Arena a = Arena.ofConfined()) {
          block.forward(a, Tensor.randn(a, DType.FLOAT32, Device.CPU, 1, 64, 7, 7), false);
        }
      }));
      try (Arena serving = Arena.ofConfined()) {
        measure("long-lived arena, Tensor.close()", calls, loop(() -> {
          Tensor x = Tensor.randn(serving, DType.FLOAT32, Device.CPU, 1, 64, 7, 7);
          Tensor y = block.forward(serving, x, false);
          y.data(); // read the result in place
          y.close();
          x.close();
        }));
      }
    }
    try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
      List<EffectiveSqueezeExcitation> blocks = new ArrayList<>();
      List<Arena> arenas = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        Arena shared = Arena.ofShared(); // each module is handed to one pool thread at a time
        arenas.add(shared);
        EffectiveSqueezeExcitation b = EffectiveSqueezeExcitation.of(shared, 64);
        b.eval();
        blocks.add(b);
      }
      measure(threads + " threads, own modules", calls, n -> {
        List<Future<?>> jobs = new ArrayList<>();
        for (EffectiveSqueezeExcitation b : blocks) {
          jobs.add(pool.submit(() -> {
            for (long k = 0; k < n / threads; k++) {
              try (Arena a = Arena.ofConfined()) {
                b.forward(a, Tensor.randn(a, DType.FLOAT32, Device.CPU, 1, 64, 7, 7), false);
              }
            }
            return null;
          }));
        }
        for (Future<?> f : jobs) {
          f.get();
        }
      });
      arenas.forEach(Arena::close);
    }
  }
}

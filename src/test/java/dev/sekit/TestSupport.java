package dev.sekit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Shared helpers of the tests: fixture location and numeric comparison. */
public final class TestSupport {
  private TestSupport() {}

  /** The directory the PyTorch fixture script wrote (set by the build). */
  public static Path fixtures() {
    String dir = System.getProperty("sekit.fixtures");
    if (dir == null) {
      throw new IllegalStateException("system property sekit.fixtures is not set: run the tests "
          + "through Maven, which generates the PyTorch fixtures first");
    }
    Path p = Path.of(dir);
    assertTrue(Files.isRegularFile(p.resolve("manifest.json")),
        "no PyTorch fixtures in " + p + " (the build runs src/test/python/make_fixtures.py)");
    return p;
  }

  /** Case names listed in the fixture manifest. */
  public static List<String> fixtureCases() {
    try {
      JsonArray a = JsonParser.parseString(Files.readString(fixtures().resolve("manifest.json")))
          .getAsJsonObject().getAsJsonArray("cases");
      List<String> r = new ArrayList<>();
      a.forEach(e -> r.add(e.getAsString()));
      return r;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Case names whose metadata "module" is one of {@code modules}. */
  public static List<String> fixtureCases(String... modules) {
    List<String> wanted = List.of(modules);
    List<String> r = new ArrayList<>();
    for (String name : fixtureCases()) {
      try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
        String m = dev.sekit.io.SafeTensors.open(a, fixtures().resolve(name + ".safetensors"))
            .metadata().get("module");
        if (wanted.contains(m)) {
          r.add(name);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    assertTrue(!r.isEmpty(), "no fixture cases for " + wanted);
    return r;
  }

  /** The values of a float32 or float64 CPU tensor as doubles. */
  public static double[] values(Tensor t) {
    return switch (t.dtype()) {
      case FLOAT64 -> t.toDoubleArray();
      case FLOAT32 -> {
        float[] f = t.toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
          d[i] = f[i];
        }
        yield d;
      }
      default -> values(t.to(DType.FLOAT64));
    };
  }

  /** max |actual - expected| / max |expected|; NaN anywhere fails. */
  public static double relativeError(Tensor expected, Tensor actual) {
    assertEquals(Arrays.toString(expected.shape()), Arrays.toString(actual.shape()), "shape");
    double[] e = values(expected);
    double[] a = values(actual);
    double maxDiff = 0;
    double maxRef = 0;
    for (int i = 0; i < e.length; i++) {
      if (Double.isNaN(a[i]) || Double.isNaN(e[i])) {
        return Double.POSITIVE_INFINITY;
      }
      maxDiff = Math.max(maxDiff, Math.abs(a[i] - e[i]));
      maxRef = Math.max(maxRef, Math.abs(e[i]));
    }
    return maxDiff / Math.max(maxRef, Double.MIN_NORMAL);
  }

  /** The tolerance for a dtype (design.md): float64 1e-10, float32 1e-5, half types 1e-2. */
  public static double tolerance(DType d) {
    return switch (d) {
      case FLOAT64 -> 1e-10;
      case FLOAT32 -> 1e-5;
      default -> 1e-2;
    };
  }

  /**
   * Asserts {@code actual} is within the dtype's tolerance of {@code expected} and records the
   * error under {@code group} in {@code worst} (largest per group).
   */
  public static void assertClose(java.util.Map<String, Double> worst, String group, String what, DType dtype,
      Tensor expected, Tensor actual) {
    assertClose(worst, group, what, tolerance(dtype), expected, actual);
  }

  /** As above, within {@code tolerance}. */
  public static void assertClose(java.util.Map<String, Double> worst, String group, String what, double tolerance,
      Tensor expected, Tensor actual) {
    double err = relativeError(expected, actual);
    worst.merge(group, err, Math::max);
    assertTrue(err <= tolerance, what + ": relative error " + err + " > " + tolerance);
  }

  /** Prints the largest error of each group, for the reports. */
  public static void printWorst(java.util.Map<String, Double> worst) {
    new java.util.TreeMap<>(worst).forEach((k, v) ->
        System.out.printf("largest relative error vs PyTorch, %s: %.3e%n", k, v));
  }

  /** Resident set size of this process in bytes (Linux). */
  public static long rssBytes() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmRSS:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    throw new IllegalStateException("no VmRSS in /proc/self/status");
  }

  /**
   * The command line that runs the program as users run it: module dev.sekit.app
   * (target/app-classes) on the module path with the library module and the runtime
   * dependencies, two intra-op threads, then {@code args}.
   */
  public static List<String> sekitCliCommand(String... args) {
    try {
      String modulePath = String.join(java.io.File.pathSeparator, "target/classes", "target/app-classes",
          Files.readString(Path.of("target/classpath.txt")).trim());
      List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
          "--enable-native-access=dev.sekit,org.jline.nativ", "-Dsekit.threads=2", "-p", modulePath,
          "-m", "dev.sekit.app/dev.sekit.app.SekitCli"));
      cmd.addAll(List.of(args));
      return cmd;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}

package dev.sekit.dist;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Starts the ranks of a test group as JVMs of their own (test class path, one intra-op
 * thread each) with torchrun's variables, each writing its output to a file and any crash
 * log (hs_err) into a directory the test checks.
 */
final class Workers implements AutoCloseable {
  final List<Process> processes = new ArrayList<>();
  private final Path dir;
  private final Path crashDir;

  private Workers(Path dir) throws IOException {
    this.dir = dir;
    this.crashDir = Files.createDirectories(dir.resolve("crash-logs"));
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  /** {@code world} ranks of {@link DistWorker} with {@code args}; {@code timeoutMs} bounds collectives. */
  static Workers start(Path dir, int world, long timeoutMs, String... args) throws IOException {
    List<String> tail = new ArrayList<>(List.of("-Ddist.timeout.ms=" + timeoutMs, DistWorker.class.getName()));
    tail.addAll(List.of(args));
    return startMain(dir, world, tail);
  }

  /** {@code world} JVMs running {@code tail} (JVM options, then a main class or source file and its arguments). */
  static Workers startMain(Path dir, int world, List<String> tail) throws IOException {
    return startMain(dir, world, tail, Map.of());
  }

  /** As {@link #startMain(Path, int, List)}, with environment variables changed for some ranks. */
  static Workers startMain(Path dir, int world, List<String> tail, Map<Integer, Map<String, String>> envOf)
      throws IOException {
    Workers w = new Workers(dir);
    int port = freePort();
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    for (int r = 0; r < world; r++) {
      List<String> cmd = new ArrayList<>(List.of(java.toString(), "--enable-native-access=ALL-UNNAMED", "-Xmx256m",
          "-XX:ErrorFile=" + w.crashDir.resolve("hs_err_pid%p.log"), "-Dsekit.threads=1", "-cp", cp));
      cmd.addAll(tail);
      ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
          .redirectOutput(dir.resolve("rank" + r + ".log").toFile());
      pb.environment().putAll(Map.of("MASTER_ADDR", "127.0.0.1", "MASTER_PORT", Integer.toString(port),
          "RANK", Integer.toString(r), "WORLD_SIZE", Integer.toString(world), "LOCAL_RANK", Integer.toString(r),
          "OMP_NUM_THREADS", "1"));
      pb.environment().putAll(envOf.getOrDefault(r, Map.of()));
      w.processes.add(pb.start());
    }
    return w;
  }

  /** Waits for rank {@code r} (5 minutes at most: a hang fails the test instead of blocking it). */
  int await(int r) throws InterruptedException {
    Process p = processes.get(r);
    if (!p.waitFor(5, TimeUnit.MINUTES)) {
      throw new AssertionError("rank " + r + " hangs; its output:\n" + output(r));
    }
    return p.exitValue();
  }

  String output(int r) {
    try {
      return Files.readString(dir.resolve("rank" + r + ".log"), StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "(no output: " + e + ")";
    }
  }

  /** Waits until rank r has printed {@code text}. */
  void awaitOutput(int r, String text) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
    while (!output(r).contains(text)) {
      if (!processes.get(r).isAlive() || System.nanoTime() > deadline) {
        throw new AssertionError("rank " + r + " did not print '" + text + "'; its output:\n" + output(r));
      }
      Thread.sleep(20);
    }
  }

  List<Path> crashLogs() throws IOException {
    try (Stream<Path> s = Files.list(crashDir)) {
      return s.toList();
    }
  }

  @Override
  public void close() {
    for (Process p : processes) {
      p.destroyForcibly();
    }
  }
}

package dev.sekit.crash;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs a class's {@code main} in a fresh JVM with the test class path, so that a misuse
 * that could kill a JVM is tried where it cannot take the test run down with it. The JVM's
 * crash log ({@code hs_err}) would land in its own directory, which the caller checks is empty.
 */
final class ChildJvm {
  private ChildJvm() {}

  /** What a child printed, how it ended, and whether it left a crash log. */
  record Result(int exitCode, String output, List<Path> crashLogs) {
    /** Exit 0, no crash log, and every line of {@code expected} in the output. */
    void assertClean(String... expected) {
      assertTrue(crashLogs.isEmpty(), "the JVM crashed: " + crashLogs + "\n" + output);
      assertEquals(0, exitCode, "exit code of the child JVM; its output:\n" + output);
      for (String e : expected) {
        assertTrue(output.contains(e), "the child should have printed '" + e + "'; it printed:\n" + output);
      }
    }
  }

  static Result run(Path workDir, List<String> shellPrefix, Class<?> main, String... args)
      throws IOException, InterruptedException {
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    Path crashDir = Files.createDirectories(workDir.resolve("crash-logs"));
    List<String> cmd = new ArrayList<>(shellPrefix);
    cmd.addAll(List.of(java.toString(), "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
        "-XX:ErrorFile=" + crashDir.resolve("hs_err_pid%p.log"), "-Dsekit.threads=2",
        "-cp", cp, main.getName()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).directory(workDir.toFile()).redirectErrorStream(true).start();
    byte[] out = p.getInputStream().readAllBytes();
    if (!p.waitFor(5, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new AssertionError("the child JVM did not finish in 5 minutes");
    }
    List<Path> logs;
    try (Stream<Path> s = Files.list(crashDir)) {
      logs = s.toList();
    }
    return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8), logs);
  }

  static Result run(Path workDir, Class<?> main, String... args) throws IOException, InterruptedException {
    return run(workDir, List.of(), main, args);
  }
}

package dev.sekit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's Java example, extracted and run as a source-file program: it must work. */
class ReadmeExampleTest {
  @TempDir Path dir;

  @Test
  void quickStartRuns() throws Exception {
    String readme = Files.readString(Path.of("README.md"));
    int marker = readme.indexOf("<!-- quickstart");
    assertTrue(marker >= 0, "README.md has no quickstart block");
    int start = readme.indexOf("```java\n", marker) + "```java\n".length();
    int end = readme.indexOf("```", start);
    Path src = dir.resolve("QuickStart.java");
    Files.writeString(src, readme.substring(start, end));
    // The Maven project under examples/ (a user's project that depends on sekit) runs the same.
    assertEquals(readme.substring(start, end),
        Files.readString(Path.of("examples/quickstart/src/main/java/QuickStart.java")),
        "examples/quickstart/src/main/java/QuickStart.java must be the README's example");

    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED",
        "-cp", System.getProperty("java.class.path"), src.toString())
        .redirectErrorStream(true).start();
    assertTrue(p.waitFor(120, TimeUnit.SECONDS), "QuickStart did not finish");
    String out = new String(p.getInputStream().readAllBytes());
    assertEquals(0, p.exitValue(), out);
    assertTrue(out.contains("Tensor[float32, cpu, shape=[8, 64, 28, 28]], dL/dx Tensor[float32, cpu, shape=[8, 64, 28, 28]]"), out);
    assertTrue(out.contains("fc.weight grad Tensor[float32, cpu, shape=[64, 64, 1, 1]]"), out);
  }
}

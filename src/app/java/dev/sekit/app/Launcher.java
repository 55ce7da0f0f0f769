package dev.sekit.app;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code sekit train --nproc-per-node N}: starts N worker JVMs of this program on this machine
 * with torchrun's variables (MASTER_ADDR=127.0.0.1, MASTER_PORT, RANK, WORLD_SIZE,
 * LOCAL_RANK), each with its share of the cores, forwards their output line by line with a
 * rank prefix, and when one fails stops the others and names it.
 */
final class Launcher {
  private Launcher() {}

  /** Options of the launcher itself, removed from the workers' command lines. */
  private static final List<String> OWN = List.of("--nproc-per-node", "--master-port", "--threads");

  /**
   * @param cliArgs the program's whole command line ("train", options...)
   * @param threads intra-op threads of all workers together
   * @return the exit code: 0 when every worker ended with 0
   */
  static int run(String[] cliArgs, int n, int masterPort, int threads) throws IOException, InterruptedException {
    int port = masterPort > 0 ? masterPort : freePort();
    int each = Math.max(1, threads / n);
    List<String> command = new ArrayList<>(jvmCommand());
    command.addAll(workerArgs(cliArgs));
    command.addAll(List.of("--threads", Integer.toString(each), "--no-progress"));
    System.out.printf("sekit train: %d worker processes on 127.0.0.1:%d, %d thread(s) each%n", n, port, each);
    List<Process> workers = new ArrayList<>();
    List<Thread> pumps = new ArrayList<>();
    Thread stopAll = new Thread(() -> stop(workers, 120), "sekit-launcher-stop");
    Runtime.getRuntime().addShutdownHook(stopAll);
    try {
      for (int rank = 0; rank < n; rank++) {
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        Map<String, String> env = pb.environment();
        env.put("MASTER_ADDR", "127.0.0.1");
        env.put("MASTER_PORT", Integer.toString(port));
        env.put("RANK", Integer.toString(rank));
        env.put("WORLD_SIZE", Integer.toString(n));
        env.put("LOCAL_RANK", Integer.toString(rank));
        env.put("LOCAL_WORLD_SIZE", Integer.toString(n));
        env.put("OMP_NUM_THREADS", Integer.toString(each));
        Process p = pb.start();
        workers.add(p);
        pumps.add(pump(p, "[rank " + rank + "] ", System.out));
      }
      int failed = -1;
      while (failed < 0) {
        boolean allDone = true;
        for (int r = 0; r < n; r++) {
          Process p = workers.get(r);
          if (p.isAlive()) {
            allDone = false;
          } else if (p.exitValue() != 0) {
            failed = r;
            break;
          }
        }
        if (allDone && failed < 0) {
          for (Thread t : pumps) {
            t.join(5000);
          }
          return 0;
        }
        if (failed < 0) {
          Thread.sleep(100);
        }
      }
      int code = workers.get(failed).exitValue();
      for (Thread t : pumps) {
        t.join(1000);
      }
      System.err.printf("sekit: worker rank %d exited with code %d%s; stopping the other workers%n", failed, code,
          code > 128 ? " (killed by signal " + (code - 128) + ")" : "");
      stop(workers, 30);
      for (Thread t : pumps) {
        t.join(5000);
      }
      System.err.printf("sekit: training failed: rank %d of %d died%n", failed, n);
      return 1;
    } finally {
      try {
        Runtime.getRuntime().removeShutdownHook(stopAll);
      } catch (IllegalStateException ignored) {
        // shutting down: the hook runs
      }
    }
  }

  /** SIGTERM to the workers still running, SIGKILL to those left after {@code graceSeconds}. */
  private static void stop(List<Process> workers, int graceSeconds) {
    for (Process p : workers) {
      if (p.isAlive()) {
        p.destroy();
      }
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(graceSeconds);
    for (Process p : workers) {
      try {
        long left = deadline - System.nanoTime();
        if (left <= 0 || !p.waitFor(left, TimeUnit.NANOSECONDS)) {
          p.destroyForcibly();
        }
      } catch (InterruptedException e) {
        p.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }

  private static Thread pump(Process p, String prefix, PrintStream out) {
    Thread t = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line; (line = r.readLine()) != null; ) {
          synchronized (out) {
            out.println(prefix + line);
          }
        }
      } catch (IOException ignored) {
        // the worker is gone
      }
    }, "sekit-output-" + prefix.trim());
    t.setDaemon(true);
    t.start();
    return t;
  }

  /** The command line without the launcher's own options. */
  static List<String> workerArgs(String[] cliArgs) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < cliArgs.length; i++) {
      String a = cliArgs[i];
      String name = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
      if (OWN.contains(name)) {
        if (!a.contains("=")) {
          i++; // its value
        }
        continue;
      }
      if (a.equals("--no-progress")) {
        continue;
      }
      out.add(a);
    }
    return out;
  }

  /** How this JVM was started, up to and including the main class (or module). */
  private static List<String> jvmCommand() {
    ProcessHandle.Info info = ProcessHandle.current().info();
    String java = info.command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    String[] args = info.arguments().orElse(new String[0]);
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals(SekitCli.class.getName()) || args[i].endsWith("/" + SekitCli.class.getName())) {
        List<String> cmd = new ArrayList<>();
        cmd.add(java);
        cmd.addAll(Arrays.asList(args).subList(0, i + 1));
        return cmd;
      }
    }
    // Started some other way: the same module path or class path.
    String modulePath = System.getProperty("jdk.module.path");
    if (modulePath != null && SekitCli.class.getModule().isNamed()) {
      return List.of(java, "--enable-native-access=dev.sekit", "-p", modulePath, "-m",
          "dev.sekit.app/" + SekitCli.class.getName());
    }
    return List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
        SekitCli.class.getName());
  }

  private static int freePort() {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}

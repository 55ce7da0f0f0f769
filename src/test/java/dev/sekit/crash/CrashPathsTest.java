package dev.sekit.crash;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each misuse that used to kill the JVM, tried in a child JVM: it must end in a clean Java
 * exception, the child must exit 0, and no crash log (hs_err) may appear.
 */
class CrashPathsTest {
  @TempDir Path dir;

  /**
   * HotSpot's own SIGSEGVs (implicit null checks) stay HotSpot's once sekit, and with it
   * libtorch and whatever libtorch loads, is in the process: a libtorch linked with MPI loads
   * UCX, whose SIGSEGV handler would abort the JVM unless the loader quiets it. Run without
   * UCX_ERROR_SIGNALS in the environment, as a user would.
   */
  @Test
  void hotSpotKeepsItsOwnSignals() throws Exception {
    ChildJvm.run(dir, List.of("env", "-u", "UCX_ERROR_SIGNALS"), HotSpotSignals.class).assertClean("survived ");
  }

  @Test
  void readOnlyDestinationsAreRefused() throws Exception {
    ChildJvm.run(dir, CrashPaths.class, "read-only-destinations", dir.toString()).assertClean(
        "OK copyTo a read-only mapping: IllegalArgumentException", "OK copyTo an asReadOnly() view",
        "OK copyTo a read-only heap segment", "OK wrap a read-only mapping", "DONE");
  }

  @Test
  void viewsSurviveOrDieWithTheStorageTheyView() throws Exception {
    ChildJvm.run(dir, CrashPaths.class, "replaced-storage").assertClean(
        "OK the parameter is float64 after module.to", "OK a view of a closed tensor",
        "OK a view after its module's arena closed", "DONE");
  }

  @Test
  void aFullDiskIsAnIOExceptionAndTheOldCheckpointSurvives() throws Exception {
    try (SmallDisk disk = SmallDisk.of(dir.resolve("disk"), 1 << 20)) {
      ChildJvm.run(dir, disk.shellPrefix(), CrashPaths.class, "full-disk", disk.path().toString()).assertClean(
          "OK a checkpoint larger than the disk: IOException", "OK the old checkpoint is intact",
          "OK no temporary file is left", "OK the old checkpoint loads", "OK a saved file gets the umask's", "DONE");
    }
  }

  @Test
  void aHeaderThatDoesNotFitIsAnIOException() throws Exception {
    try (SmallDisk disk = SmallDisk.of(dir.resolve("disk"), 32 << 10)) {
      ChildJvm.run(dir, disk.shellPrefix(), CrashPaths.class, "header-does-not-fit", disk.path().toString())
          .assertClean("OK a header larger than the space left: IOException", "OK no temporary file is left", "DONE");
    }
  }

  @Test
  void aFileChangedUnderItsReaderCannotKillTheJvm() throws Exception {
    ChildJvm.run(dir, CrashPaths.class, "file-changed-under-reader", dir.toString()).assertClean(
        "OK a tensor read before the file was truncated", "OK a tensor read before the file was rewritten",
        "OK opening the truncated file", "DONE");
  }

  @Test
  void aModuleSharedByThreadsRefusesConcurrentUse() throws Exception {
    ChildJvm.run(dir, CrashPaths.class, "shared-module").assertClean(
        "OK no other exception", "OK concurrent calls were refused", "DONE");
  }

  @Test
  void threadCountsAreBounded() throws Exception {
    ChildJvm.run(dir, CrashPaths.class, "too-many-threads").assertClean(
        "OK setNumThreads(100000): IllegalArgumentException", "OK a forward with the most threads allowed", "DONE");
  }

  /**
   * A directory where writing more than {@code bytes} fails: a tmpfs of that size where the
   * tests may mount one (as root), otherwise a file-size limit (ulimit -f) on the child JVM,
   * under which a larger write fails with "File too large".
   */
  record SmallDisk(Path path, boolean mounted, long bytes) implements AutoCloseable {
    static SmallDisk of(Path path, long bytes) throws IOException, InterruptedException {
      Files.createDirectories(path);
      boolean mounted = run("mount", "-t", "tmpfs", "-o", "size=" + bytes, "tmpfs", path.toString()) == 0;
      return new SmallDisk(path, mounted, bytes);
    }

    List<String> shellPrefix() {
      return mounted ? List.of() : List.of("bash", "-c", "ulimit -f " + bytes / 512 + " && exec \"$0\" \"$@\"");
    }

    @Override
    public void close() throws IOException {
      if (mounted) {
        try {
          run("umount", path.toString());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    }

    private static int run(String... cmd) throws IOException, InterruptedException {
      try {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        return p.waitFor(30, TimeUnit.SECONDS) ? p.exitValue() : -1;
      } catch (IOException e) {
        return -1; // no such command
      }
    }
  }
}

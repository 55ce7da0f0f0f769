package dev.sekit.internal;

import dev.sekit.internal.ffi.sekit_h;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Loads libsekit.so once, in this order: the path in the system property
 * {@code sekit.library.path} (a file, or a directory holding libsekit.so), the copy
 * bundled in the jar (extracted under its own name into a fresh temporary directory),
 * then {@code java.library.path}. Then checks that the library's ABI version is the
 * one the bindings were generated for.
 */
public final class NativeLoader {
  /** Resource path of the bundled library. */
  public static final String BUNDLED = "/native/linux-x86_64/libsekit.so";

  private static volatile boolean loaded;

  private NativeLoader() {}

  public static void ensureLoaded() {
    if (!loaded) {
      load();
    }
  }

  private static synchronized void load() {
    if (loaded) {
      return;
    }
    String how;
    try {
      String explicit = System.getProperty("sekit.library.path");
      if (explicit != null && !explicit.isBlank()) {
        Path p = Path.of(explicit);
        if (Files.isDirectory(p)) {
          p = p.resolve("libsekit.so");
        }
        if (!Files.isRegularFile(p)) {
          throw new UnsatisfiedLinkError(
              "sekit.library.path is set to " + explicit + " but " + p + " is not a file");
        }
        System.load(p.toAbsolutePath().toString());
        how = p.toString();
      } else {
        Path extracted = extractBundled();
        if (extracted != null) {
          System.load(extracted.toString());
          how = "bundled " + BUNDLED;
        } else {
          System.loadLibrary("sekit");
          how = "java.library.path";
        }
      }
    } catch (UnsatisfiedLinkError e) {
      String msg = String.valueOf(e.getMessage());
      if (msg.contains("libtorch") || msg.contains("libc10")) {
        UnsatisfiedLinkError u = new UnsatisfiedLinkError(
            "libsekit needs libtorch's shared libraries, which were not found: install Debian's "
                + "libtorch-dev (apt-get install -y libtorch-dev) or add a libtorch's lib/ to "
                + "LD_LIBRARY_PATH (" + msg + ")");
        u.initCause(e);
        throw u;
      }
      throw e;
    } catch (IllegalCallerException e) {
      throw new IllegalCallerException(
          "sekit needs native access: run java with --enable-native-access=dev.sekit (module path) "
              + "or --enable-native-access=ALL-UNNAMED (class path)", e);
    }
    int expected = sekit_h.SK_ABI_VERSION();
    int actual = sekit_h.sk_abi_version();
    if (actual != expected) {
      throw new UnsatisfiedLinkError("libsekit from " + how + " has ABI version " + actual
          + " but these bindings need version " + expected + ": rebuild sekit so both match");
    }
    String threads = System.getProperty("sekit.threads");
    if (threads != null && !threads.isBlank()) {
      int n;
      try {
        n = Integer.parseInt(threads.trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("sekit.threads must be a positive integer, got '" + threads + "'");
      }
      Calls.check(sekit_h.sk_set_num_threads(n));
    }
    loaded = true;
  }

  private static Path extractBundled() {
    try (InputStream in = NativeLoader.class.getResourceAsStream(BUNDLED)) {
      if (in == null) {
        return null;
      }
      Path dir = Files.createTempDirectory("sekit-native-");
      Path lib = dir.resolve("libsekit.so");
      Files.copy(in, lib, StandardCopyOption.REPLACE_EXISTING);
      lib.toFile().deleteOnExit();
      dir.toFile().deleteOnExit();
      return lib;
    } catch (IOException e) {
      UnsatisfiedLinkError u = new UnsatisfiedLinkError("could not extract the bundled libsekit.so: " + e);
      u.initCause(e);
      throw u;
    }
  }
}

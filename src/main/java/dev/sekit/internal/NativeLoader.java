package dev.sekit.internal;

import dev.sekit.internal.ffi.sekit_h;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Loads libsekit.so once, in this order: the path in the system property
 * {@code sekit.library.path} (a file, or a directory holding libsekit.so), the copy
 * bundled in the jar (extracted under its own name into a fresh temporary directory),
 * then {@code java.library.path}. Then checks that the library's ABI version is the
 * one the bindings were generated for.
 *
 * <p>Before loading, it sets {@code UCX_ERROR_SIGNALS} to the empty string in the process's
 * environment (unless it is set already): a libtorch linked with MPI (Debian 13's) loads UCX,
 * which otherwise installs a SIGSEGV handler that aborts the JVM at HotSpot's own, deliberate
 * SIGSEGVs (implicit null checks in compiled code).
 *
 * <p>Where the library cannot be loaded because the libtorch it was built against is not the
 * one found at run time, the error says both versions and where each was found; the bundled
 * library carries its build's libtorch in {@value #BUILD_INFO}.
 */
public final class NativeLoader {
  /** Resource path of the bundled library. */
  public static final String BUNDLED = "/native/linux-x86_64/libsekit.so";
  /** Resource path of the bundled library's build facts (the libtorch it was built against). */
  public static final String BUILD_INFO = "/native/linux-x86_64/libsekit.properties";

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
    Path fromFile = null;
    try {
      quietUcxSignals();
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
        fromFile = p.toAbsolutePath();
        System.load(fromFile.toString());
        how = p.toString();
      } else {
        Path extracted = extractBundled();
        if (extracted != null) {
          fromFile = extracted;
          System.load(extracted.toString());
          how = "bundled " + BUNDLED;
        } else {
          System.loadLibrary("sekit");
          how = "java.library.path";
        }
      }
    } catch (UnsatisfiedLinkError e) {
      String msg = String.valueOf(e.getMessage());
      Properties built = buildInfo(fromFile);
      String mismatch = built == null ? null : torchMismatch(built, msg, torchSearchPath(built));
      if (mismatch != null) {
        UnsatisfiedLinkError u = new UnsatisfiedLinkError(mismatch);
        u.initCause(e);
        throw u;
      }
      if (isTorchError(msg)) {
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

  /** Whether the linker's error names one of libtorch's libraries. */
  private static boolean isTorchError(String linkerError) {
    return linkerError.contains("libtorch") || linkerError.contains("libc10");
  }

  /**
   * Sets {@code UCX_ERROR_SIGNALS=""} in the process environment (through libc's setenv, so
   * that libraries loaded later read it) unless the user has set it.
   */
  static void quietUcxSignals() {
    if (System.getenv("UCX_ERROR_SIGNALS") != null) {
      return; // the user's setting stands
    }
    // Best effort: where libc's setenv cannot be called, the library still loads (and only a
    // libtorch that loads UCX is exposed, as without this setting).
    try (Arena arena = Arena.ofConfined()) {
      Linker linker = Linker.nativeLinker();
      var found = linker.defaultLookup().find("setenv");
      if (found.isEmpty()) {
        return;
      }
      MethodHandle setenv = linker.downcallHandle(found.get(),
          FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
      int rc = (int) setenv.invokeExact(arena.allocateFrom("UCX_ERROR_SIGNALS"), arena.allocateFrom(""), 0);
      assert rc == 0 : "setenv(UCX_ERROR_SIGNALS) failed";
    } catch (IllegalCallerException e) {
      throw e; // no native access: load() says what to pass
    } catch (Throwable t) {
      // as above: best effort
    }
  }


  /**
   * The build facts beside the library file (the build writes them there, and the bundled copy
   * is extracted with them); null when there are none.
   */
  private static Properties buildInfo(Path library) {
    Path beside = library == null ? null : library.resolveSibling("libsekit.properties");
    if (beside == null || !Files.isRegularFile(beside)) {
      return null;
    }
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(beside)) {
      p.load(in);
      return p;
    } catch (IOException e) {
      return null;
    }
  }

  /** Where the dynamic linker looks for libtorch: the build's rpath, LD_LIBRARY_PATH, the system's. */
  private static List<Path> torchSearchPath(Properties built) {
    Set<String> dirs = new LinkedHashSet<>();
    String ld = System.getenv("LD_LIBRARY_PATH");
    if (ld != null) {
      for (String d : ld.split(":")) {
        if (!d.isBlank()) {
          dirs.add(d);
        }
      }
    }
    String lib = built.getProperty("torch.lib");
    if (lib != null && !lib.isBlank()) {
      dirs.add(lib);
    }
    dirs.add("/usr/lib/x86_64-linux-gnu");
    dirs.add("/usr/local/lib");
    dirs.add("/usr/lib");
    List<Path> out = new ArrayList<>();
    for (String d : dirs) {
      out.add(Path.of(d));
    }
    return out;
  }

  private static final Pattern SONAME_VERSION = Pattern.compile("libtorch_cpu\\.so\\.(\\d+(?:\\.\\d+)*)");
  private static final Pattern PY_VERSION = Pattern.compile("__version__\\s*=\\s*['\"]([^'\"]+)['\"]");

  /**
   * One sentence naming the libtorch the library was built against and the one found at run
   * time, where the load failed for want of libtorch's symbols or files and the two differ;
   * null otherwise (the caller reports the linker's own error).
   */
  static String torchMismatch(Properties built, String linkerError, List<Path> searchPath) {
    String want = built.getProperty("torch.version", "?");
    String wantLib = built.getProperty("torch.lib", "?");
    if (!isTorchError(linkerError) && !linkerError.contains("undefined symbol")) {
      return null;
    }
    String[] found = findTorch(searchPath);
    String head = "libsekit was built against libtorch " + want + " (" + wantLib + ")";
    String fix = ": rebuild sekit against the libtorch at hand (./sekit test or mvn package), or install libtorch "
        + want + " where it was found at build time";
    if (found == null) {
      return head + " but no libtorch was found at run time (searched " + searchPath + ")" + fix
          + " [" + linkerError + "]";
    }
    if (sameRelease(found[0], want)) {
      return null;
    }
    return head + " but found libtorch " + found[0] + " (" + found[1] + ")" + fix + " [" + linkerError + "]";
  }

  /** "1.13" and "1.13.1", or "2.13.0+cpu" and "2.13.0", name the same release. */
  static boolean sameRelease(String a, String b) {
    String[] x = a.split("\\+", 2)[0].split("\\.");
    String[] y = b.split("\\+", 2)[0].split("\\.");
    if (Math.min(x.length, y.length) < 2) {
      return false;
    }
    for (int i = 0; i < Math.min(x.length, y.length); i++) {
      if (!x[i].equals(y[i])) {
        return false;
      }
    }
    return true;
  }

  /** {version, file} of the first libtorch_cpu on the path, or null. */
  private static String[] findTorch(List<Path> searchPath) {
    for (Path dir : searchPath) {
      if (!Files.isDirectory(dir)) {
        continue;
      }
      // A Python torch: torch/lib/libtorch_cpu.so beside torch/version.py.
      Path plain = dir.resolve("libtorch_cpu.so");
      Path py = dir.resolveSibling("version.py");
      if (Files.isRegularFile(plain) && Files.isRegularFile(py)) {
        try {
          Matcher m = PY_VERSION.matcher(Files.readString(py, StandardCharsets.UTF_8));
          if (m.find()) {
            return new String[] {m.group(1), plain.toString()};
          }
        } catch (IOException e) {
          // fall through to the other layouts
        }
      }
      // Debian's: libtorch_cpu.so.MAJOR.MINOR.
      try (var files = Files.list(dir)) {
        for (Path f : (Iterable<Path>) files.sorted()::iterator) {
          Matcher m = SONAME_VERSION.matcher(f.getFileName().toString());
          if (m.matches()) {
            return new String[] {m.group(1), f.toString()};
          }
        }
      } catch (IOException e) {
        continue;
      }
      // An unpacked libtorch: lib/libtorch_cpu.so and build-version one level up.
      Path buildVersion = dir.resolveSibling("build-version");
      if (Files.isRegularFile(plain) && Files.isRegularFile(buildVersion)) {
        try {
          return new String[] {Files.readString(buildVersion, StandardCharsets.UTF_8).trim(), plain.toString()};
        } catch (IOException e) {
          continue;
        }
      }
    }
    return null;
  }

  private static Path extractBundled() {
    try (InputStream in = NativeLoader.class.getResourceAsStream(BUNDLED)) {
      if (in == null) {
        return null;
      }
      Path dir = Files.createTempDirectory("sekit-native-");
      // Deleted in the reverse order of registration: the directory last, once empty.
      dir.toFile().deleteOnExit();
      Path lib = dir.resolve("libsekit.so");
      Files.copy(in, lib, StandardCopyOption.REPLACE_EXISTING);
      lib.toFile().deleteOnExit();
      try (InputStream info = NativeLoader.class.getResourceAsStream(BUILD_INFO)) {
        if (info != null) {
          Path p = dir.resolve("libsekit.properties");
          Files.copy(info, p, StandardCopyOption.REPLACE_EXISTING);
          p.toFile().deleteOnExit();
        }
      }
      return lib;
    } catch (IOException e) {
      UnsatisfiedLinkError u = new UnsatisfiedLinkError("could not extract the bundled libsekit.so: " + e);
      u.initCause(e);
      throw u;
    }
  }
}

package dev.sekit.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.Sekit;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLoaderTest {
  private static final String UNDEFINED =
      "/tmp/sekit-native-1/libsekit.so: /x/libtorch_cpu.so: undefined symbol: _ZN3c104impl3cow11cow_deleterEPv";

  private static Properties built(String version, String lib) {
    Properties p = new Properties();
    p.setProperty("torch.version", version);
    p.setProperty("torch.lib", lib);
    return p;
  }

  @Test
  void theBuildRecordsTheLibtorchItLinks() throws IOException {
    String loaded = Sekit.torchVersion();
    Properties p = new Properties();
    try (InputStream in = NativeLoader.class.getResourceAsStream(NativeLoader.BUILD_INFO)) {
      assertNotNull(in, "the jar should carry " + NativeLoader.BUILD_INFO);
      p.load(in);
    }
    assertTrue(NativeLoader.sameRelease(p.getProperty("torch.version"), loaded),
        "recorded " + p.getProperty("torch.version") + ", running " + loaded);
    assertTrue(Files.isDirectory(Path.of(p.getProperty("torch.lib"))), p.getProperty("torch.lib"));
  }

  @Test
  void aDebianLibtorchOfAnotherReleaseIsNamed(@TempDir Path dir) throws IOException {
    Files.createFile(dir.resolve("libtorch_cpu.so.2.6"));
    String msg = NativeLoader.torchMismatch(built("1.13.1", "/usr/lib/x86_64-linux-gnu"),
        "libtorch_cpu.so.1.13: cannot open shared object file: No such file or directory", List.of(dir));
    assertNotNull(msg);
    assertTrue(msg.startsWith("libsekit was built against libtorch 1.13.1 (/usr/lib/x86_64-linux-gnu) but found "
        + "libtorch 2.6 (" + dir.resolve("libtorch_cpu.so.2.6") + ")"), msg);
    assertTrue(msg.contains("rebuild sekit"), msg);
  }

  @Test
  void aPythonTorchOfAnotherReleaseIsNamed(@TempDir Path dir) throws IOException {
    Path lib = Files.createDirectories(dir.resolve("torch/lib"));
    Files.createFile(lib.resolve("libtorch_cpu.so"));
    Files.writeString(dir.resolve("torch/version.py"), "__version__ = '2.12.1+cpu'\ndebug = False\n");
    String msg = NativeLoader.torchMismatch(built("2.13.0", "/venv/torch/lib"), UNDEFINED, List.of(lib));
    assertNotNull(msg);
    assertTrue(msg.contains("built against libtorch 2.13.0 (/venv/torch/lib) but found libtorch 2.12.1+cpu ("
        + lib.resolve("libtorch_cpu.so") + ")"), msg);
  }

  @Test
  void noLibtorchAtAllIsSaid(@TempDir Path dir) {
    String msg = NativeLoader.torchMismatch(built("2.6.0", "/gone"), UNDEFINED, List.of(dir));
    assertNotNull(msg);
    assertTrue(msg.contains("built against libtorch 2.6.0 (/gone) but no libtorch was found at run time"), msg);
  }

  @Test
  void theSameReleaseIsNoMismatch(@TempDir Path dir) throws IOException {
    Files.createFile(dir.resolve("libtorch_cpu.so.1.13"));
    assertNull(NativeLoader.torchMismatch(built("1.13.1", dir.toString()), UNDEFINED, List.of(dir)));
    // An error that is not libtorch's is left to the linker's own message.
    assertNull(NativeLoader.torchMismatch(built("2.6.0", dir.toString()), "libjpeg.so.62: cannot open", List.of(dir)));
  }

  @Test
  void releasesCompareByTheirLeadingNumbers() {
    assertTrue(NativeLoader.sameRelease("1.13", "1.13.1"));
    assertTrue(NativeLoader.sameRelease("2.13.0+cpu", "2.13.0"));
    assertFalse(NativeLoader.sameRelease("2.6", "2.13.0"));
    assertFalse(NativeLoader.sameRelease("2", "2.6.0"));
  }

  /** UCX reads UCX_ERROR_SIGNALS when libtorch loads it: the loader sets it first, to nothing. */
  @Test
  void ucxIsToldToLeaveSegvToTheJvm() throws Throwable {
    Sekit.abiVersion(); // loads the library
    Linker linker = Linker.nativeLinker();
    MethodHandle getenv = linker.downcallHandle(linker.defaultLookup().find("getenv").orElseThrow(),
        FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS));
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment v = (MemorySegment) getenv.invokeExact(arena.allocateFrom("UCX_ERROR_SIGNALS"));
      assertFalse(v.equals(MemorySegment.NULL), "UCX_ERROR_SIGNALS should be set once sekit is loaded");
      String expected = System.getenv("UCX_ERROR_SIGNALS") == null ? "" : System.getenv("UCX_ERROR_SIGNALS");
      assertEquals(expected, v.reinterpret(4096).getString(0));
    }
  }
}

package dev.sekit.crash;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Attention;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.OsaBlock;
import dev.sekit.nn.SqueezeExcitation;
import dev.sekit.train.Checkpoint;
import dev.sekit.train.Optimizer;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * The misuses that killed the JVM before the one-door rework, each run by
 * {@code CrashPathsTest} in a child JVM. A scenario prints "OK ..." for every misuse that
 * ended in the expected exception, and exits with 3 (after printing "FAIL ...") when one did
 * not; a crash would end the JVM without either.
 */
public final class CrashPaths {
  private CrashPaths() {}

  private static int failures;

  public static void main(String[] args) throws Exception {
    switch (args[0]) {
      case "read-only-destinations" -> readOnlyDestinations(Path.of(args[1]));
      case "replaced-storage" -> replacedStorage();
      case "full-disk" -> fullDisk(Path.of(args[1]));
      case "header-does-not-fit" -> headerDoesNotFit(Path.of(args[1]));
      case "file-changed-under-reader" -> fileChangedUnderReader(Path.of(args[1]));
      case "shared-module" -> sharedModule();
      case "too-many-threads" -> tooManyThreads();
      default -> throw new IllegalArgumentException(args[0]);
    }
    System.out.println(failures == 0 ? "DONE" : "FAILURES " + failures);
    System.exit(failures == 0 ? 0 : 3);
  }

  interface Misuse {
    void run() throws Exception;
  }

  /** Runs {@code misuse}; prints OK when it throws {@code type} with {@code fragment} in its message. */
  static void expect(String what, Class<? extends Throwable> type, String fragment, Misuse misuse) {
    try {
      misuse.run();
      fail(what + ": no exception");
    } catch (Throwable t) {
      if (type.isInstance(t) && String.valueOf(t.getMessage()).contains(fragment)) {
        System.out.println("OK " + what + ": " + t.getClass().getSimpleName() + ": " + t.getMessage());
      } else {
        fail(what + ": " + t);
        t.printStackTrace(System.out);
      }
    }
  }

  static void check(boolean ok, String what) {
    if (ok) {
      System.out.println("OK " + what);
    } else {
      fail(what);
    }
  }

  static void fail(String what) {
    failures++;
    System.out.println("FAIL " + what);
  }

  // 1. Read-only destinations: a read-only mapping (SIGSEGV before) and asReadOnly() views
  //    of writable memory (silently written through before).
  static void readOnlyDestinations(Path dir) throws IOException {
    Path file = dir.resolve("ro.bin");
    Files.write(file, new byte[64]);
    try (Arena arena = Arena.ofConfined();
        FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, 64, arena);
      Tensor t = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 16);
      expect("copyTo a read-only mapping", IllegalArgumentException.class, "read-only", () -> t.copyTo(mapped));
      MemorySegment writable = arena.allocate(64);
      expect("copyTo an asReadOnly() view", IllegalArgumentException.class, "read-only",
          () -> t.copyTo(writable.asReadOnly()));
      check(Arrays.equals(new byte[64], writable.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)),
          "the writable memory behind the read-only view is untouched");
      float[] heap = new float[16];
      expect("copyTo a read-only heap segment", IllegalArgumentException.class, "read-only",
          () -> t.copyTo(MemorySegment.ofArray(heap).asReadOnly()));
      expect("wrap a read-only mapping", IllegalArgumentException.class, "read-only",
          () -> Tensor.wrap(arena, mapped, DType.FLOAT32, 16));
      t.copyTo(writable); // and the writable one still works
      check(writable.get(JAVA_FLOAT, 0) == t.toFloatArray()[0], "copyTo a writable segment");
    }
  }

  // 2. A view of a parameter (or of optimizer state) whose storage is replaced by
  //    module.to(FLOAT64): heap corruption or a hang before. Views now keep the memory they
  //    show alive; views of a closed tensor die with it.
  static void replacedStorage() {
    try (Arena arena = Arena.ofConfined()) {
      SqueezeExcitation se = SqueezeExcitation.of(arena, 32);
      Tensor w = se.namedParameters().get("fc1.weight");
      MemorySegment before = w.data();
      se.to(DType.FLOAT64);
      for (long i = 0; i < before.byteSize() / 4; i++) {
        before.setAtIndex(JAVA_FLOAT, i, 1.0f); // the old float32 memory: still there, no longer the module's
      }
      check(w.dtype() == DType.FLOAT64, "the parameter is float64 after module.to");
      MemorySegment after = w.data();
      check(after.byteSize() == before.byteSize() * 2 && after.get(JAVA_DOUBLE, 0) != 1.0,
          "a new view shows the new storage, untouched by writes through the old view");

      Tensor x = Tensor.randn(arena, DType.FLOAT64, Device.CPU, 2, 32, 4, 4);
      Optimizer sgd = Optimizer.sgd(se, 0.1).momentum(0.9).build(arena);
      se.forward(x).backward(Tensor.randn(arena, DType.FLOAT64, Device.CPU, 2, 32, 4, 4));
      sgd.step();
      MemorySegment momentum = sgd.stateDict().get("fc1.weight.momentum_buffer").data();
      se.to(DType.FLOAT32);
      Tensor x32 = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 32, 4, 4);
      sgd.zeroGrad();
      se.forward(x32).backward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 32, 4, 4));
      sgd.step(); // converts the optimizer's state to float32: the old buffer's storage is replaced
      for (long i = 0; i < momentum.byteSize() / 8; i++) {
        momentum.setAtIndex(JAVA_DOUBLE, i, 7.0);
      }
      check(sgd.stateDict().get("fc1.weight.momentum_buffer").dtype() == DType.FLOAT32,
          "the optimizer's state follows the parameters; the old view wrote to memory it kept alive");

      Tensor y = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1024);
      MemorySegment view = y.data();
      y.close();
      expect("a view of a closed tensor", IllegalStateException.class, "closed", () -> view.get(JAVA_FLOAT, 0));
      expect("a closed tensor", IllegalStateException.class, "closed (Tensor.close())", y::numel);
      expect("closing a parameter on its own", UnsupportedOperationException.class, "module",
          () -> se.namedParameters().get("fc1.bias").close());
    }
    MemorySegment[] escaped = new MemorySegment[1];
    try (Arena arena = Arena.ofConfined()) {
      escaped[0] = EffectiveSqueezeExcitation.of(arena, 8).namedParameters().get("fc.weight").data();
    }
    expect("a view after its module's arena closed", IllegalStateException.class, "closed",
        () -> escaped[0].get(JAVA_FLOAT, 0));
  }

  // 3. A full file system: SIGBUS before (the writes went through a writable mmap). Now an
  //    IOException, the old checkpoint intact, no temporary file left.
  static void fullDisk(Path dir) throws IOException {
    Path file = dir.resolve("model.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Module small = EffectiveSqueezeExcitation.of(arena, 8);
      Checkpoint.save(file, small, null, Map.of("note", "the one that must survive"));
      byte[] saved = Files.readAllBytes(file);
      Path probe = Files.createFile(dir.resolve("umask-probe"));
      check(Files.getPosixFilePermissions(file).equals(Files.getPosixFilePermissions(probe)),
          "a saved file gets the umask's permissions: "
              + PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
      Files.delete(probe);

      Module big = EffectiveSqueezeExcitation.of(arena, 1024); // 4 MB of weights
      expect("a checkpoint larger than the disk", IOException.class, "", () -> Checkpoint.save(file, big, null, null));
      check(Arrays.equals(saved, Files.readAllBytes(file)), "the old checkpoint is intact");
      check(temporaries(dir).isEmpty(), "no temporary file is left: " + temporaries(dir));
      Map<String, String> meta = Checkpoint.load(file, small, null);
      check("the one that must survive".equals(meta.get("note")), "the old checkpoint loads");
    }
  }

  // 3b. So full that not even the header fits: java.lang.InternalError before.
  static void headerDoesNotFit(Path dir) throws IOException {
    Path file = dir.resolve("tiny.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Module m = EffectiveSqueezeExcitation.of(arena, 4);
      String longNote = "x".repeat(64 << 10);
      expect("a header larger than the space left", IOException.class, "",
          () -> Checkpoint.save(file, m, null, Map.of("note", longNote)));
      check(!Files.exists(file), "no file appears");
      check(temporaries(dir).isEmpty(), "no temporary file is left: " + temporaries(dir));
    }
  }

  static List<Path> temporaries(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList();
    }
  }

  // 4. A file truncated or rewritten while a SafeTensors opened from it is in use: SIGBUS
  //    before (tensors viewed a shared mapping). The default open now reads the file.
  static void fileChangedUnderReader(Path dir) throws IOException {
    Path file = dir.resolve("weights.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Tensor t = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 256, 1024);
      SafeTensors.write(file, Map.of("w", t), null);
      float[] expected = t.toFloatArray();
      SafeTensors st = SafeTensors.open(arena, file);
      Tensor w = st.tensor("w");
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
        ch.truncate(16);
      }
      check(Arrays.equals(expected, w.toFloatArray()), "a tensor read before the file was truncated");
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
        ch.write(ByteBuffer.allocate(4096), 0);
      }
      check(Arrays.equals(expected, st.tensor("w").toFloatArray()), "a tensor read before the file was rewritten");
      expect("opening the truncated file", IOException.class, "", () -> SafeTensors.open(arena, file));
    }
  }

  // 5. One module shared by threads that run forward, backward and zeroGrad: SIGSEGV,
  //    SIGABRT or a hang before, and lost BatchNorm updates. Now refused with an exception.
  static void sharedModule() throws Exception {
    AtomicInteger refused = new AtomicInteger();
    AtomicInteger done = new AtomicInteger();
    List<String> unexpected = new ArrayList<>();
    try (Arena shared = Arena.ofShared(); ExecutorService pool = Executors.newFixedThreadPool(4)) {
      OsaBlock block = OsaBlock.builder(16, 16, 32, 3).attention(Attention.ESE).build(shared);
      List<Future<?>> jobs = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        jobs.add(pool.submit(() -> {
          for (int i = 0; i < 150; i++) {
            try (Arena mine = Arena.ofConfined()) {
              Tensor x = Tensor.randn(mine, DType.FLOAT32, Device.CPU, 4, 16, 16, 16).requiresGrad(true);
              Tensor y = block.forward(mine, x, true);
              y.backward(Tensor.randn(mine, DType.FLOAT32, Device.CPU, 4, 32, 16, 16));
              block.zeroGrad();
              done.incrementAndGet();
            } catch (IllegalStateException e) {
              if (e.getMessage().contains("in use by another thread")) {
                refused.incrementAndGet();
              } else {
                synchronized (unexpected) {
                  unexpected.add(e.toString());
                }
              }
            } catch (RuntimeException e) {
              synchronized (unexpected) {
                unexpected.add(e.toString());
              }
            }
          }
          return null;
        }));
      }
      for (Future<?> f : jobs) {
        f.get();
      }
      check(unexpected.isEmpty(), "no other exception: " + unexpected.stream().limit(3).toList());
      check(refused.get() > 0, "concurrent calls were refused (" + refused.get() + " of 600; " + done.get()
          + " steps completed)");
      // Handed from thread to thread, one at a time, the module works.
      for (int i = 0; i < 3; i++) {
        pool.submit(() -> {
          try (Arena mine = Arena.ofConfined()) {
            block.forward(mine, Tensor.randn(mine, DType.FLOAT32, Device.CPU, 2, 16, 8, 8), false);
          }
        }).get();
      }
      check(true, "one thread at a time, the shared module runs on any thread");
    }
  }

  // 6. setNumThreads(100000) was accepted and the next forward never finished.
  static void tooManyThreads() {
    expect("setNumThreads(100000)", IllegalArgumentException.class, "threads must be in [1, ",
        () -> Sekit.setNumThreads(100000));
    check(Sekit.maxThreads() >= 8, "maxThreads() is " + Sekit.maxThreads());
    Sekit.setNumThreads(Sekit.maxThreads());
    try (Arena arena = Arena.ofConfined()) {
      EffectiveSqueezeExcitation.of(arena, 64).forward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 64, 8, 8));
    }
    check(true, "a forward with the most threads allowed finishes");
  }
}

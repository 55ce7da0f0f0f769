package dev.sekit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.io.MalformedSafeTensorsException;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Activation;
import dev.sekit.nn.Attention;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.MaxPool2d;
import dev.sekit.nn.Module;
import dev.sekit.nn.OsaBlock;
import dev.sekit.nn.Sequential;
import dev.sekit.nn.SqueezeExcitation;
import dev.sekit.train.Losses;
import dev.sekit.train.Optimizer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bounded fuzzing with fixed seeds: mutated safetensors files, and random sequences of public
 * calls with wrong shapes, dtypes, closed arenas and views. Every outcome must be a result or
 * one of the documented exceptions; a crash ends the test JVM and fails the run. More
 * iterations on request: {@code -Dsekit.fuzz.iterations=100000 -Dsekit.fuzz.seed=7}.
 */
class FuzzTest {
  private static final int ITERATIONS = Integer.getInteger("sekit.fuzz.iterations", 50_000);
  private static final long SEED = Long.getLong("sekit.fuzz.seed", 20261122L);

  @TempDir Path dir;

  // ------------------------------------------------------------------ safetensors

  @Test
  void mutatedSafetensorsFilesAreRefusedCleanly() throws Exception {
    byte[] original = validFile();
    SplittableRandom r = new SplittableRandom(SEED);
    Map<String, Integer> outcomes = new TreeMap<>();
    for (int i = 0; i < ITERATIONS; i++) {
      byte[] b = mutate(original, r);
      try (Arena arena = Arena.ofConfined()) {
        MemorySegment seg = arena.allocate(Math.max(1, b.length), 64).asSlice(0, b.length);
        MemorySegment.copy(b, 0, seg, ValueLayout.JAVA_BYTE, 0, b.length);
        SafeTensors st = SafeTensors.read(arena, seg, "mutant-" + i);
        for (String name : st.entries().keySet()) {
          try {
            Tensor t = st.tensor(name);
            Tensor wide = t.to(DType.FLOAT64); // reads every byte
            if (wide.numel() == 1) {
              wide.item();
            }
          } catch (IllegalArgumentException | SekitException e) {
            outcomes.merge("tensor refused: " + e.getClass().getSimpleName(), 1, Integer::sum);
          }
        }
        outcomes.merge("accepted", 1, Integer::sum);
      } catch (MalformedSafeTensorsException e) {
        outcomes.merge("malformed", 1, Integer::sum);
        assertTrue(!e.getMessage().contains("http"), e.getMessage());
      } catch (Throwable t) {
        throw new AssertionError("mutant " + i + " (seed " + SEED + ") gave " + t, t);
      }
    }
    System.out.println("safetensors fuzz, " + ITERATIONS + " mutants: " + outcomes);
    assertTrue(outcomes.getOrDefault("malformed", 0) > ITERATIONS / 4, outcomes.toString());
  }

  private byte[] validFile() throws Exception {
    Path file = dir.resolve("seed.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Map<String, Tensor> t = new LinkedHashMap<>(OsaBlock.builder(4, 4, 8, 2).attention(Attention.SE)
          .build(arena).stateDict());
      t.put("half", Tensor.randn(arena, DType.FLOAT32, Device.CPU, 3).to(DType.FLOAT16));
      t.put("one", Tensor.randn(arena, DType.FLOAT64, Device.CPU, 1));
      SafeTensors.write(file, t, Map.of("format", "pt", "note", "ünïcödé"));
    }
    return Files.readAllBytes(file);
  }

  private static final String[] TOKENS = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "0", "-1",
      "4e0", "1.5", "NaN", "true", "null", "'", "/*", "\"dtype\"", "\"F32\"", "\"shape\"", "\"data_offsets\"",
      "\"__metadata__\"", "18446744073709551615", "9223372036854775807", " ", "\u00ff", "\u0000"};

  private static byte[] mutate(byte[] original, SplittableRandom r) {
    byte[] b = original.clone();
    int headerEnd = 8 + (int) Math.min(original.length - 8, readLength(original));
    int kind = r.nextInt(8);
    switch (kind) {
      case 0 -> { // flip bytes anywhere
        for (int k = 0, n = 1 + r.nextInt(4); k < n; k++) {
          b[r.nextInt(b.length)] ^= (byte) (1 << r.nextInt(8));
        }
      }
      case 1 -> { // flip bytes in the header
        for (int k = 0, n = 1 + r.nextInt(4); k < n; k++) {
          b[8 + r.nextInt(headerEnd - 8)] = (byte) r.nextInt(256);
        }
      }
      case 2 -> b = java.util.Arrays.copyOf(b, r.nextInt(b.length)); // truncate
      case 3 -> { // trailing garbage
        b = java.util.Arrays.copyOf(b, b.length + 1 + r.nextInt(64));
      }
      case 4 -> { // a new header length
        long n = switch (r.nextInt(4)) {
          case 0 -> r.nextLong();
          case 1 -> readLength(original) + r.nextInt(-16, 17);
          case 2 -> -1L;
          default -> r.nextInt(b.length);
        };
        for (int k = 0; k < 8; k++) {
          b[k] = (byte) (n >>> (8 * k));
        }
      }
      default -> { // splice a JSON token into the header, keeping its declared length
        String header = new String(original, 8, headerEnd - 8, StandardCharsets.UTF_8);
        int at = r.nextInt(header.length());
        String token = TOKENS[r.nextInt(TOKENS.length)];
        String mutated = r.nextBoolean()
            ? header.substring(0, at) + token + header.substring(Math.min(header.length(), at + token.length()))
            : header.substring(0, at) + token + header.substring(at);
        byte[] h = mutated.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[8 + h.length + (original.length - headerEnd)];
        for (int k = 0; k < 8; k++) {
          out[k] = (byte) ((long) h.length >>> (8 * k));
        }
        System.arraycopy(h, 0, out, 8, h.length);
        System.arraycopy(original, headerEnd, out, 8 + h.length, original.length - headerEnd);
        b = out;
      }
    }
    return b;
  }

  private static long readLength(byte[] b) {
    long n = 0;
    for (int k = 7; k >= 0; k--) {
      n = (n << 8) | (b[k] & 0xff);
    }
    return n;
  }

  // ------------------------------------------------------------------ the public API

  /** What a misuse may end in: the documented exceptions, nothing else. */
  private static boolean documented(Throwable t) {
    return t instanceof IllegalArgumentException || t instanceof IllegalStateException
        || t instanceof NullPointerException || t instanceof SekitException
        || t instanceof UnsupportedOperationException || t instanceof IndexOutOfBoundsException;
  }

  @Test
  void randomCallsEndInResultsOrDocumentedExceptions() {
    SplittableRandom r = new SplittableRandom(SEED + 1);
    Map<String, Integer> outcomes = new TreeMap<>();
    int calls = ITERATIONS;
    try (Arena outer = Arena.ofConfined()) {
      List<Arena> arenas = new ArrayList<>(List.of(outer));
      List<Tensor> tensors = new ArrayList<>();
      List<Module> modules = new ArrayList<>();
      for (int i = 0; i < calls; i++) {
        if (tensors.isEmpty()) {
          tensors.add(Tensor.randn(outer, DType.FLOAT32, Device.CPU, 2, 4, 3, 3));
        }
        if (modules.isEmpty()) {
          modules.add(EffectiveSqueezeExcitation.of(outer, 4));
        }
        int op = r.nextInt(22);
        try {
          call(op, r, arenas, tensors, modules);
          outcomes.merge("ok", 1, Integer::sum);
        } catch (Throwable t) {
          if (!documented(t)) {
            throw new AssertionError("call " + i + " (op " + op + ", seed " + (SEED + 1) + ") gave " + t, t);
          }
          outcomes.merge(t.getClass().getSimpleName(), 1, Integer::sum);
        }
        if (tensors.size() > 64) {
          tensors.subList(0, 32).clear();
        }
        if (modules.size() > 16) {
          modules.subList(0, 8).clear();
        }
      }
      for (Arena a : arenas.subList(1, arenas.size())) {
        if (a.scope().isAlive()) {
          a.close();
        }
      }
    }
    System.out.println("API fuzz, " + calls + " calls: " + outcomes);
    assertTrue(outcomes.getOrDefault("ok", 0) > calls / 5, outcomes.toString());
  }

  private static <T> T pick(List<T> l, SplittableRandom r) {
    return l.isEmpty() ? null : l.get(r.nextInt(l.size()));
  }

  private static long[] shape(SplittableRandom r) {
    int rank = r.nextInt(6);
    long[] s = new long[rank];
    for (int k = 0; k < rank; k++) {
      s[k] = switch (r.nextInt(12)) {
        case 0 -> 0;
        case 1 -> -1;
        // Over x86-64's user address space at any dtype: refused even where the kernel
        // overcommits memory without limit, never a 4 TiB buffer that randn would fill.
        case 2 -> 1L << 48;
        default -> 1 + r.nextInt(6);
      };
    }
    if (rank == 4 && r.nextInt(3) > 0) {
      s[1] = new long[] {4, 8, 16}[r.nextInt(3)];
    }
    return s;
  }

  private static void call(int op, SplittableRandom r, List<Arena> arenas, List<Tensor> tensors,
      List<Module> modules) {
    Arena a = pick(arenas, r);
    DType dt = DType.values()[r.nextInt(DType.values().length)];
    Tensor t = pick(tensors, r);
    Module m = pick(modules, r);
    switch (op) {
      case 0 -> tensors.add(Tensor.randn(a, dt, Device.CPU, shape(r)));
      case 1 -> tensors.add(Tensor.zeros(a, dt, r.nextInt(8) == 0 ? Device.cuda(0) : Device.CPU, shape(r)));
      case 2 -> { // wrap memory of another arena, of a random size
        Arena owner = pick(arenas, r);
        MemorySegment seg = owner.allocate(8L * (1 + r.nextInt(64)), 8);
        tensors.add(Tensor.wrap(a, r.nextBoolean() ? seg : seg.asSlice(r.nextInt(8)), dt, shape(r)));
      }
      case 3 -> arenas.add(r.nextBoolean() ? Arena.ofConfined() : Arena.ofShared());
      case 4 -> { // close an arena (never the outer one)
        if (arenas.size() > 1) {
          Arena c = arenas.remove(1 + r.nextInt(arenas.size() - 1));
          c.close();
        }
      }
      case 5 -> t.close();
      case 6 -> {
        MemorySegment v = t.data();
        if (v.byteSize() > 0) {
          v.get(ValueLayout.JAVA_BYTE, r.nextLong(v.byteSize()));
        }
      }
      case 7 -> t.copyTo(r.nextBoolean() ? a.allocate(t.numel() * t.dtype().byteSize() + r.nextInt(2))
          : a.allocate(Math.max(1, t.numel() * t.dtype().byteSize())).asReadOnly());
      case 8 -> tensors.add(t.narrow(a, r.nextInt(-1, 5), r.nextInt(-1, 4), r.nextInt(0, 4)));
      case 9 -> tensors.add(t.to(a, dt, Device.CPU));
      case 10 -> t.requiresGrad(r.nextBoolean());
      case 11 -> t.backward(r.nextBoolean() ? pick(tensors, r) : Tensor.zeros(a, t.dtype(), Device.CPU, t.shape()));
      case 12 -> t.grad().ifPresent(tensors::add);
      case 13 -> modules.add(switch (r.nextInt(5)) {
        case 0 -> EffectiveSqueezeExcitation.of(a, 4 << r.nextInt(3));
        case 1 -> SqueezeExcitation.builder(4 << r.nextInt(3)).gate(Activation.values()[r.nextInt(8)]).build(a);
        case 2 -> OsaBlock.builder(4 << r.nextInt(3), 4, 8, 1 + r.nextInt(2)).residual(r.nextBoolean()).build(a);
        case 3 -> MaxPool2d.of(a, 1 + r.nextInt(3), 1 + r.nextInt(2), r.nextBoolean());
        default -> Sequential.of(a, pick(modules, r), pick(modules, r));
      });
      case 14 -> tensors.add(m.forward(a, t, r.nextBoolean()));
      case 15 -> m.to(r.nextBoolean() ? DType.FLOAT64 : DType.FLOAT32);
      case 16 -> m.to(r.nextBoolean() ? MemoryFormat.CHANNELS_LAST : MemoryFormat.CONTIGUOUS);
      case 17 -> {
        m.zeroGrad();
        m.clipGradNorm(r.nextBoolean() ? 1.0 : -1.0);
      }
      case 18 -> m.loadStateDict(pick(modules, r).stateDict(), r.nextBoolean(), r.nextBoolean());
      case 19 -> {
        Optimizer o = r.nextBoolean() ? Optimizer.sgd(m, 0.1).build(a) : Optimizer.adamW(m, r.nextDouble(-1, 1)).build(a);
        o.step();
        o.zeroGrad();
      }
      case 20 -> tensors.add(Losses.crossEntropy(t, pick(tensors, r), r.nextDouble(-0.5, 1.5)));
      default -> {
        t.copyFrom(pick(tensors, r));
        tensors.add(t.indexSelect(a, r.nextInt(-1, 3), pick(tensors, r)));
      }
    }
  }
}

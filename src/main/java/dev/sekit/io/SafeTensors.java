package dev.sekit.io;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The safetensors format (what timm and the Hugging Face hub ship): an 8-byte
 * little-endian header length, a JSON header, then the tensors' bytes.
 *
 * <p>{@link #open} memory-maps the file into an {@link Arena} (privately: writes through
 * a tensor never reach the file) and checks the whole header before any tensor touches
 * the bytes. {@link #tensor} views the mapped bytes without copying when their alignment
 * allows (and the file is writable, which a private mapping needs), and copies otherwise.
 */
public final class SafeTensors {
  /** A header larger than this is refused (the format's reference reader uses 100 MB). */
  public static final long MAX_HEADER_BYTES = 100L << 20;

  private static final ValueLayout.OfLong U64_LE =
      ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** One tensor's entry in the header. */
  public record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    public long byteSize() {
      return end - begin;
    }
  }

  private final Arena arena;
  private final Path path;
  private final MemorySegment data;
  private final Map<String, Entry> entries;
  private final Map<String, String> metadata;

  private SafeTensors(Arena arena, Path path, MemorySegment data, Map<String, Entry> entries,
      Map<String, String> metadata) {
    this.arena = arena;
    this.path = path;
    this.data = data;
    this.entries = entries;
    this.metadata = metadata;
  }

  /**
   * Maps {@code file} into {@code arena} and validates its header.
   *
   * @throws MalformedSafeTensorsException when the file is not valid safetensors
   * @throws UncheckedIOException when it cannot be read
   */
  public static SafeTensors open(Arena arena, Path file) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(file, "file");
    MemorySegment all;
    try {
      all = map(arena, file);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
    }
    long n = all.get(U64_LE, 0);
    if (n < 2 || n > MAX_HEADER_BYTES || n > all.byteSize() - 8) {
      throw new MalformedSafeTensorsException(file, "header length " + Long.toUnsignedString(n)
          + " runs past the end of the file (" + all.byteSize() + " bytes)"
          + (Long.compareUnsigned(n, MAX_HEADER_BYTES) > 0 ? " or over the 100 MB limit" : ""));
    }
    byte[] headerBytes = all.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
    MemorySegment data = all.asSlice(8 + n);
    Map<String, String> meta = new LinkedHashMap<>();
    Map<String, Entry> entries = parseHeader(file, new String(headerBytes, StandardCharsets.UTF_8),
        data.byteSize(), meta);
    return new SafeTensors(arena, file, data, entries, Collections.unmodifiableMap(meta));
  }

  /**
   * Maps the file copy-on-write (a private mapping: tensors over it are writable and the
   * file never changes). That needs a channel opened for writing; where the file is not
   * writable, it is mapped read-only and {@link #tensor} copies instead.
   */
  private static MemorySegment map(Arena arena, Path file) throws IOException {
    boolean writable = Files.isWritable(file);
    try (FileChannel ch = writable
        ? FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)
        : FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size < 8) {
        throw new MalformedSafeTensorsException(file, "the file has " + size
            + " bytes, fewer than the 8 of the header length");
      }
      return ch.map(writable ? FileChannel.MapMode.PRIVATE : FileChannel.MapMode.READ_ONLY, 0, size, arena);
    }
  }

  private static Map<String, Entry> parseHeader(Path file, String json, long dataBytes,
      Map<String, String> meta) {
    JsonObject root;
    try {
      JsonElement el = JsonParser.parseString(json);
      if (!el.isJsonObject()) {
        throw new MalformedSafeTensorsException(file, "the header is not a JSON object");
      }
      root = el.getAsJsonObject();
    } catch (JsonParseException e) {
      throw new MalformedSafeTensorsException(file, "the header is not valid JSON: " + e.getMessage());
    }
    Map<String, Entry> entries = new LinkedHashMap<>();
    for (Map.Entry<String, JsonElement> kv : root.entrySet()) {
      String name = kv.getKey();
      if (name.equals("__metadata__")) {
        if (!kv.getValue().isJsonObject()) {
          throw new MalformedSafeTensorsException(file, "__metadata__ is not an object");
        }
        for (Map.Entry<String, JsonElement> m : kv.getValue().getAsJsonObject().entrySet()) {
          if (!m.getValue().isJsonPrimitive() || !m.getValue().getAsJsonPrimitive().isString()) {
            throw new MalformedSafeTensorsException(file, "__metadata__." + m.getKey() + " is not a string");
          }
          meta.put(m.getKey(), m.getValue().getAsString());
        }
        continue;
      }
      entries.put(name, parseEntry(file, name, kv.getValue(), dataBytes));
    }
    List<Entry> byOffset = new ArrayList<>(entries.values());
    byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
    for (int i = 1; i < byOffset.size(); i++) {
      Entry a = byOffset.get(i - 1);
      Entry b = byOffset.get(i);
      if (b.begin() < a.end()) {
        throw new MalformedSafeTensorsException(file, "tensors '" + a.name() + "' [" + a.begin()
            + ", " + a.end() + ") and '" + b.name() + "' [" + b.begin() + ", " + b.end() + ") overlap");
      }
    }
    return Collections.unmodifiableMap(entries);
  }

  private static Entry parseEntry(Path file, String name, JsonElement el, long dataBytes) {
    String where = "tensor '" + name + "'";
    if (!el.isJsonObject()) {
      throw new MalformedSafeTensorsException(file, where + " is not an object");
    }
    JsonObject o = el.getAsJsonObject();
    JsonElement dt = o.get("dtype");
    JsonElement sh = o.get("shape");
    JsonElement off = o.get("data_offsets");
    if (dt == null || sh == null || off == null) {
      throw new MalformedSafeTensorsException(file, where + " lacks dtype, shape or data_offsets");
    }
    DType dtype = dtypeOf(file, where, dt);
    long[] shape = longs(file, where + " shape", sh, -1);
    long[] offsets = longs(file, where + " data_offsets", off, 2);
    long begin = offsets[0];
    long end = offsets[1];
    if (begin > end || end > dataBytes) {
      throw new MalformedSafeTensorsException(file, where + " data_offsets [" + begin + ", " + end
          + "] are out of range: the data section has " + dataBytes + " bytes");
    }
    long numel = 1;
    try {
      for (long s : shape) {
        numel = Math.multiplyExact(numel, s);
      }
      long expect = Math.multiplyExact(numel, dtype.byteSize());
      if (expect != end - begin) {
        throw new MalformedSafeTensorsException(file, where + " has shape " + Arrays.toString(shape)
            + " of " + dtype + " (" + expect + " bytes) but its data_offsets span " + (end - begin) + " bytes");
      }
    } catch (ArithmeticException e) {
      throw new MalformedSafeTensorsException(file, where + " shape " + Arrays.toString(shape) + " is too large");
    }
    return new Entry(name, dtype, shape, begin, end);
  }

  private static DType dtypeOf(Path file, String where, JsonElement dt) {
    if (!dt.isJsonPrimitive() || !dt.getAsJsonPrimitive().isString()) {
      throw new MalformedSafeTensorsException(file, where + " dtype is not a string");
    }
    return switch (dt.getAsString()) {
      case "F32" -> DType.FLOAT32;
      case "F64" -> DType.FLOAT64;
      case "F16" -> DType.FLOAT16;
      case "BF16" -> DType.BFLOAT16;
      case "I64" -> DType.INT64;
      default -> throw new MalformedSafeTensorsException(file, where + " has dtype '"
          + dt.getAsString() + "', which sekit does not support (F32, F64, F16, BF16, I64)");
    };
  }

  private static long[] longs(Path file, String where, JsonElement el, int expectLength) {
    if (!el.isJsonArray()) {
      throw new MalformedSafeTensorsException(file, where + " is not an array");
    }
    JsonArray a = el.getAsJsonArray();
    if (expectLength >= 0 && a.size() != expectLength) {
      throw new MalformedSafeTensorsException(file, where + " has " + a.size() + " entries, expected " + expectLength);
    }
    long[] r = new long[a.size()];
    for (int i = 0; i < r.length; i++) {
      JsonElement v = a.get(i);
      long x;
      try {
        if (!v.isJsonPrimitive() || !v.getAsJsonPrimitive().isNumber()) {
          throw new NumberFormatException();
        }
        x = v.getAsJsonPrimitive().getAsBigDecimal().longValueExact();
      } catch (NumberFormatException | ArithmeticException e) {
        throw new MalformedSafeTensorsException(file, where + "[" + i + "] is not an integer: " + v);
      }
      if (x < 0) {
        throw new MalformedSafeTensorsException(file, where + "[" + i + "] is negative: " + x);
      }
      r[i] = x;
    }
    return r;
  }

  // ------------------------------------------------------------------ reading

  /** The file this was read from. */
  public Path path() {
    return path;
  }

  /** Free-form string metadata ({@code __metadata__}). */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** Tensor entries by name, in the header's order. */
  public Map<String, Entry> entries() {
    return entries;
  }

  private Entry entry(String name) {
    Entry e = entries.get(Objects.requireNonNull(name, "name"));
    if (e == null) {
      throw new IllegalArgumentException("no tensor '" + name + "' in " + path);
    }
    return e;
  }

  /** The raw bytes of tensor {@code name} (a slice of the mapping, no copy). */
  public MemorySegment bytes(String name) {
    Entry e = entry(name);
    return data.asSlice(e.begin(), e.byteSize());
  }

  /**
   * Tensor {@code name}, owned by this file's arena: a view of the mapped bytes when they
   * are aligned for the dtype, otherwise a copy.
   */
  public Tensor tensor(String name) {
    Entry e = entry(name);
    MemorySegment b = bytes(name);
    long[] shape = e.shape();
    for (long s : shape) {
      if (s == 0) {
        throw new IllegalArgumentException("tensor '" + name + "' in " + path + " is empty (shape "
            + Arrays.toString(shape) + "); sekit tensors need sizes >= 1");
      }
    }
    if (!b.isReadOnly() && b.address() % e.dtype().byteSize() == 0) {
      return Tensor.wrap(arena, b, e.dtype(), shape);
    }
    return Tensor.copyOf(arena, b, e.dtype(), shape);
  }

  /** Every tensor, by name (see {@link #tensor}). */
  public Map<String, Tensor> tensors() {
    Map<String, Tensor> r = new LinkedHashMap<>();
    for (String n : entries.keySet()) {
      r.put(n, tensor(n));
    }
    return r;
  }

  /**
   * The tensors whose names start with {@code prefix}, keyed by the rest of the name (e.g.
   * {@code tensors("model.")} for a model's state dict inside a training checkpoint).
   */
  public Map<String, Tensor> tensors(String prefix) {
    Objects.requireNonNull(prefix, "prefix");
    Map<String, Tensor> r = new LinkedHashMap<>();
    for (String n : entries.keySet()) {
      if (n.startsWith(prefix)) {
        r.put(n.substring(prefix.length()), tensor(n));
      }
    }
    return r;
  }

  // ------------------------------------------------------------------ writing

  /**
   * Writes {@code tensors} (any device; copied to the host) with {@code metadata} to
   * {@code file}, atomically: the bytes go to a temporary file in the same directory, which
   * then replaces {@code file}, so a crash never leaves a half-written file behind.
   */
  public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
    Objects.requireNonNull(file, "file");
    Objects.requireNonNull(tensors, "tensors");
    JsonObject header = new JsonObject();
    if (metadata != null && !metadata.isEmpty()) {
      JsonObject m = new JsonObject();
      metadata.forEach(m::addProperty);
      header.add("__metadata__", m);
    }
    long offset = 0;
    List<Tensor> order = new ArrayList<>();
    for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
      if (e.getKey().equals("__metadata__")) {
        throw new IllegalArgumentException("'__metadata__' is reserved and cannot name a tensor");
      }
      Tensor t = Objects.requireNonNull(e.getValue(), () -> "tensor " + e.getKey());
      long bytes = t.numel() * t.dtype().byteSize();
      JsonObject o = new JsonObject();
      o.addProperty("dtype", code(t.dtype()));
      JsonArray shape = new JsonArray();
      for (long s : t.shape()) {
        shape.add(s);
      }
      o.add("shape", shape);
      JsonArray off = new JsonArray();
      off.add(offset);
      off.add(offset + bytes);
      o.add("data_offsets", off);
      header.add(e.getKey(), o);
      order.add(t);
      offset += bytes;
    }
    byte[] json = new Gson().toJson(header).getBytes(StandardCharsets.UTF_8);
    int padded = (json.length + 7) / 8 * 8; // keeps every tensor 8-byte aligned in the file
    Path dir = file.toAbsolutePath().getParent();
    Path tmp = null;
    try {
      tmp = Files.createTempFile(dir, "." + file.getFileName() + ".", ".tmp");
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.READ, StandardOpenOption.WRITE);
          Arena scratch = Arena.ofConfined()) {
        long total = 8 + padded + offset;
        MemorySegment out = ch.map(FileChannel.MapMode.READ_WRITE, 0, total, scratch);
        out.set(U64_LE, 0, padded);
        MemorySegment.copy(json, 0, out, ValueLayout.JAVA_BYTE, 8, json.length);
        out.asSlice(8 + json.length, padded - json.length).fill((byte) ' ');
        long pos = 8 + padded;
        for (Tensor t : order) {
          long bytes = t.numel() * t.dtype().byteSize();
          Tensor host = t.device().equals(Device.CPU) ? t : t.to(scratch, t.dtype(), Device.CPU);
          host.copyTo(out.asSlice(pos, bytes));
          pos += bytes;
        }
        out.force();
      }
      try {
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
      }
      tmp = null;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
    } finally {
      if (tmp != null) {
        try {
          Files.deleteIfExists(tmp);
        } catch (IOException ignored) {
          // best effort: the temporary file is hidden and named after the target
        }
      }
    }
  }

  private static String code(DType d) {
    return switch (d) {
      case FLOAT32 -> "F32";
      case FLOAT64 -> "F64";
      case FLOAT16 -> "F16";
      case BFLOAT16 -> "BF16";
      case INT64 -> "I64";
    };
  }
}

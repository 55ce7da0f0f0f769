package dev.sekit.io;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
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
import java.util.concurrent.ThreadLocalRandom;

/**
 * The safetensors format (what timm and the Hugging Face hub ship): an 8-byte
 * little-endian header length, a JSON header, then the tensors' bytes.
 *
 * <p>Reading checks the whole file before any tensor touches its bytes, as strictly as the
 * format's reference reader: standard JSON only, no duplicate names, offsets that tile the
 * data section exactly (no gaps, no overlaps, no trailing bytes), UTF-8 names.
 *
 * <ul>
 *   <li>{@link #open} reads the file into memory owned by an arena: the safe default. Tensors
 *       view that memory without a further copy.
 *   <li>{@link #openMapped} memory-maps it instead (no copy at all, pages read on demand).
 *       The mapping is private, so writes through a tensor never reach the file, but it
 *       carries the hazard of every memory-mapped file: if anyone truncates or rewrites the
 *       file while it is mapped, the next read of a lost page raises SIGBUS and the JVM
 *       dies. Use it only for files nothing else writes while they are open.
 * </ul>
 */
public final class SafeTensors {
  /** A header larger than this is refused (the format's reference reader's limit). */
  public static final long MAX_HEADER_BYTES = 100_000_000L;

  private static final ValueLayout.OfLong U64_LE =
      ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  /** Reads and writes go through buffers of at most this many bytes. */
  private static final int CHUNK = 1 << 30;

  /** One tensor's entry in the header. */
  public record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    public Entry {
      shape = shape.clone();
    }

    @Override
    public long[] shape() {
      return shape.clone();
    }

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

  // ------------------------------------------------------------------ opening

  /**
   * Reads {@code file} into memory owned by {@code arena} and validates it. Nothing that
   * happens to the file afterwards affects the tensors.
   *
   * @throws MalformedSafeTensorsException when the file is not valid safetensors
   * @throws IOException when it cannot be read (the message says why: no such file,
   *     permission denied, ...)
   */
  public static SafeTensors open(Arena arena, Path file) throws IOException {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(file, "file");
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      MemorySegment all = arena.allocate(Math.max(size, 1), 64).asSlice(0, size);
      long pos = 0;
      while (pos < size) {
        int n = ch.read(all.asSlice(pos, Math.min(CHUNK, size - pos)).asByteBuffer(), pos);
        if (n < 0) {
          throw new IOException(file + " became shorter while it was read (" + pos + " of " + size + " bytes)");
        }
        pos += n;
      }
      return parse(arena, file, all);
    } catch (NoSuchFileException | AccessDeniedException e) {
      throw readError(file, e);
    }
  }

  /**
   * Memory-maps {@code file} (privately: writes through a tensor never reach the file) and
   * validates it. No copy is made; see the class comment for the hazard this carries.
   *
   * @throws MalformedSafeTensorsException when the file is not valid safetensors
   * @throws IOException when it cannot be read
   */
  public static SafeTensors openMapped(Arena arena, Path file) throws IOException {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(file, "file");
    // A private mapping needs a channel opened for writing; a file we may not write is
    // mapped read-only, and tensor() then copies.
    boolean writable = Files.isWritable(file);
    try (FileChannel ch = writable
        ? FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)
        : FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size < 8) {
        throw new MalformedSafeTensorsException(file, "the file has " + size
            + " bytes, fewer than the 8 of the header length");
      }
      return parse(arena, file,
          ch.map(writable ? FileChannel.MapMode.PRIVATE : FileChannel.MapMode.READ_ONLY, 0, size, arena));
    } catch (NoSuchFileException | AccessDeniedException e) {
      throw readError(file, e);
    }
  }

  /**
   * Validates safetensors bytes already in memory ({@code bytes} must stay alive while the
   * tensors are used); {@code name} names them in messages.
   *
   * @throws MalformedSafeTensorsException when they are not valid safetensors
   */
  public static SafeTensors read(Arena arena, MemorySegment bytes, String name) throws MalformedSafeTensorsException {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(bytes, "bytes");
    return parse(arena, Path.of(Objects.requireNonNull(name, "name")), bytes);
  }

  private static IOException readError(Path file, IOException e) {
    String why = e instanceof NoSuchFileException ? "no such file" : "permission denied";
    IOException r = e instanceof NoSuchFileException
        ? new NoSuchFileException(file.toString(), null, why)
        : new AccessDeniedException(file.toString(), null, why);
    r.initCause(e);
    return r;
  }

  private static SafeTensors parse(Arena arena, Path file, MemorySegment all) throws MalformedSafeTensorsException {
    if (all.byteSize() < 8) {
      throw new MalformedSafeTensorsException(file, "the file has " + all.byteSize()
          + " bytes, fewer than the 8 of the header length");
    }
    long n = all.get(U64_LE, 0);
    if (Long.compareUnsigned(n, MAX_HEADER_BYTES) > 0) {
      throw new MalformedSafeTensorsException(file, "the header length " + Long.toUnsignedString(n)
          + " is over the limit of " + MAX_HEADER_BYTES + " bytes");
    }
    if (n > all.byteSize() - 8) {
      throw new MalformedSafeTensorsException(file, "the header length " + n + " runs past the end of the file ("
          + all.byteSize() + " bytes)");
    }
    String json;
    try {
      json = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(all.asSlice(8, n).asByteBuffer())
          .toString();
    } catch (CharacterCodingException e) {
      throw new MalformedSafeTensorsException(file, "the header is not valid UTF-8");
    }
    MemorySegment data = all.asSlice(8 + n);
    Map<String, Object> root;
    try {
      root = HeaderJson.parseObject(json);
    } catch (HeaderJson.SyntaxError e) {
      throw new MalformedSafeTensorsException(file, "the header is not valid JSON: " + e.getMessage());
    }
    Map<String, String> meta = new LinkedHashMap<>();
    Map<String, Entry> entries = new LinkedHashMap<>();
    for (Map.Entry<String, Object> kv : root.entrySet()) {
      if (kv.getKey().equals("__metadata__")) {
        if (!(kv.getValue() instanceof Map<?, ?> m)) {
          throw new MalformedSafeTensorsException(file, "__metadata__ is not an object");
        }
        for (Map.Entry<?, ?> e : m.entrySet()) {
          if (!(e.getValue() instanceof String v)) {
            throw new MalformedSafeTensorsException(file, "__metadata__ value \"" + e.getKey() + "\" is not a string");
          }
          meta.put((String) e.getKey(), v);
        }
      } else {
        entries.put(kv.getKey(), entry(file, kv.getKey(), kv.getValue()));
      }
    }
    checkTiling(file, entries, data.byteSize());
    return new SafeTensors(arena, file, data, Collections.unmodifiableMap(entries),
        Collections.unmodifiableMap(meta));
  }

  private static Entry entry(Path file, String name, Object value) throws MalformedSafeTensorsException {
    String where = "tensor \"" + name + "\"";
    if (!(value instanceof Map<?, ?> o)) {
      throw new MalformedSafeTensorsException(file, where + " is not an object");
    }
    for (Object key : o.keySet()) {
      if (!key.equals("dtype") && !key.equals("shape") && !key.equals("data_offsets")) {
        throw new MalformedSafeTensorsException(file, where + " has an unknown field \"" + key + "\"");
      }
    }
    if (!(o.get("dtype") instanceof String dt)) {
      throw new MalformedSafeTensorsException(file, where + (o.containsKey("dtype")
          ? " dtype is not a string" : " has no dtype"));
    }
    DType dtype = switch (dt) {
      case "F32" -> DType.FLOAT32;
      case "F64" -> DType.FLOAT64;
      case "F16" -> DType.FLOAT16;
      case "BF16" -> DType.BFLOAT16;
      case "I64" -> DType.INT64;
      default -> throw new MalformedSafeTensorsException(file, where + " has dtype \"" + dt
          + "\", which sekit does not support (F32, F64, F16, BF16, I64)");
    };
    long[] shape = integers(file, where, "shape", o.get("shape"), -1);
    long[] offsets = integers(file, where, "data_offsets", o.get("data_offsets"), 2);
    if (offsets[0] > offsets[1]) {
      throw new MalformedSafeTensorsException(file, where + " data_offsets [" + offsets[0] + ", " + offsets[1]
          + "] end before they begin");
    }
    long bytes = dtype.byteSize();
    for (long s : shape) {
      if (s != 0 && bytes > Long.MAX_VALUE / s) {
        throw new MalformedSafeTensorsException(file, where + " shape " + Arrays.toString(shape) + " is too large");
      }
      bytes *= s;
    }
    if (bytes != offsets[1] - offsets[0]) {
      throw new MalformedSafeTensorsException(file, where + " has shape " + Arrays.toString(shape) + " of " + dtype
          + " (" + bytes + " bytes) but its data_offsets span " + (offsets[1] - offsets[0]) + " bytes");
    }
    return new Entry(name, dtype, shape, offsets[0], offsets[1]);
  }

  private static long[] integers(Path file, String where, String field, Object value, int length)
      throws MalformedSafeTensorsException {
    if (value == null) {
      throw new MalformedSafeTensorsException(file, where + " has no " + field);
    }
    if (!(value instanceof List<?> a)) {
      throw new MalformedSafeTensorsException(file, where + " " + field + " is not an array");
    }
    if (length >= 0 && a.size() != length) {
      throw new MalformedSafeTensorsException(file, where + " " + field + " has " + a.size() + " entries, expected "
          + length);
    }
    long[] r = new long[a.size()];
    for (int k = 0; k < r.length; k++) {
      if (!(a.get(k) instanceof Long v) || v < 0) {
        throw new MalformedSafeTensorsException(file, where + " " + field + "[" + k
            + "] is not a non-negative integer: " + a.get(k));
      }
      r[k] = v;
    }
    return r;
  }

  /** The tensors must tile [0, dataBytes) exactly, as the reference reader requires. */
  private static void checkTiling(Path file, Map<String, Entry> entries, long dataBytes)
      throws MalformedSafeTensorsException {
    List<Entry> byOffset = new ArrayList<>(entries.values());
    byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
    long expect = 0;
    for (Entry e : byOffset) {
      if (e.begin() < expect) {
        throw new MalformedSafeTensorsException(file, "tensor \"" + e.name() + "\" [" + e.begin() + ", " + e.end()
            + ") overlaps the tensor before it, which ends at " + expect);
      }
      if (e.begin() > expect) {
        throw new MalformedSafeTensorsException(file, "bytes [" + expect + ", " + e.begin()
            + ") of the data section belong to no tensor (a gap before \"" + e.name() + "\")");
      }
      expect = e.end();
    }
    if (expect != dataBytes) {
      throw new MalformedSafeTensorsException(file, expect > dataBytes
          ? "the tensors need " + expect + " bytes of data but the file has " + dataBytes
          : "the file has " + (dataBytes - expect) + " bytes after the last tensor's data");
    }
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
      throw new IllegalArgumentException("no tensor \"" + name + "\" in " + path);
    }
    return e;
  }

  /** The raw bytes of tensor {@code name} (a slice of the file's memory, no copy). */
  public MemorySegment bytes(String name) {
    Entry e = entry(name);
    return data.asSlice(e.begin(), e.byteSize());
  }

  /**
   * Tensor {@code name}, owned by this file's arena: a view of the file's bytes when they are
   * aligned for the dtype (and writable), otherwise a copy.
   */
  public Tensor tensor(String name) {
    Entry e = entry(name);
    MemorySegment b = bytes(name);
    long[] shape = e.shape();
    for (long s : shape) {
      if (s == 0) {
        throw new IllegalArgumentException("tensor \"" + name + "\" in " + path + " is empty (shape "
            + Arrays.toString(shape) + "); sekit tensors need sizes >= 1");
      }
    }
    if (b.isNative() && !b.isReadOnly() && b.address() % e.dtype().byteSize() == 0) {
      return Tensor.wrap(arena, b, e.dtype(), shape);
    }
    return Tensor.copyOf(arena, b, e.dtype(), shape);
  }

  /** Every tensor, by name (see {@link #tensor}). */
  public Map<String, Tensor> tensors() {
    return tensors("");
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
   * {@code file}, atomically: the bytes go to a temporary file in the same directory, are
   * forced to the disk, and the temporary file then replaces {@code file}. If anything fails
   * (a full disk included) the exception says why, {@code file} is as it was, and the
   * temporary file is gone. New files get the permissions the process's umask gives. A
   * temporary file that a killed process left behind is removed by the next write of the
   * same file.
   *
   * @throws IOException when the file cannot be written
   */
  public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
    Objects.requireNonNull(file, "file");
    Objects.requireNonNull(tensors, "tensors");
    byte[] header = header(tensors, metadata == null ? Map.of() : metadata);
    Path target = file.toAbsolutePath();
    Path dir = target.getParent();
    String base = target.getFileName().toString();
    removeStaleTemporaries(dir, base);
    Path tmp = dir.resolve("." + base + "." + ProcessHandle.current().pid() + "-"
        + Long.toHexString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE) + ".tmp");
    boolean done = false;
    try {
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
        writeFully(ch, len);
        writeFully(ch, ByteBuffer.wrap(header));
        for (Tensor t : tensors.values()) {
          writeTensor(ch, t);
        }
        ch.force(true);
      }
      try {
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
      }
      done = true;
      syncDirectory(dir);
    } finally {
      if (!done) {
        Files.deleteIfExists(tmp);
      }
    }
  }

  /** The JSON header, padded with spaces to a multiple of 8 bytes (so tensors stay aligned). */
  private static byte[] header(Map<String, Tensor> tensors, Map<String, String> metadata) {
    StringBuilder json = new StringBuilder("{");
    if (!metadata.isEmpty()) {
      json.append("\"__metadata__\":{");
      boolean first = true;
      for (Map.Entry<String, String> m : metadata.entrySet()) {
        String k = wellFormed(Objects.requireNonNull(m.getKey(), "a metadata key is null"), "metadata key");
        String v = Objects.requireNonNull(m.getValue(), () -> "metadata value for \"" + k + "\" is null");
        json.append(first ? "" : ",").append(HeaderJson.string(k)).append(':')
            .append(HeaderJson.string(wellFormed(v, "metadata value for \"" + k + "\"")));
        first = false;
      }
      json.append('}');
    }
    long offset = 0;
    for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
      String name = wellFormed(Objects.requireNonNull(e.getKey(), "a tensor name is null"), "tensor name");
      if (name.equals("__metadata__")) {
        throw new IllegalArgumentException("\"__metadata__\" is reserved and cannot name a tensor");
      }
      Tensor t = Objects.requireNonNull(e.getValue(), () -> "tensor \"" + name + "\" is null");
      long bytes = t.numel() * t.dtype().byteSize();
      json.append(json.length() > 1 ? "," : "").append(HeaderJson.string(name))
          .append(":{\"dtype\":\"").append(code(t.dtype())).append("\",\"shape\":")
          .append(Arrays.toString(t.shape()).replace(" ", "")).append(",\"data_offsets\":[")
          .append(offset).append(',').append(offset + bytes).append("]}");
      offset += bytes;
    }
    byte[] b = json.append('}').toString().getBytes(StandardCharsets.UTF_8);
    int used = b.length;
    b = Arrays.copyOf(b, (used + 7) / 8 * 8);
    Arrays.fill(b, used, b.length, (byte) ' ');
    return b;
  }

  private static String wellFormed(String s, String what) {
    try {
      StandardCharsets.UTF_8.newEncoder().onMalformedInput(CodingErrorAction.REPORT).encode(CharBuffer.wrap(s));
      return s;
    } catch (CharacterCodingException e) {
      throw new IllegalArgumentException(what + " \"" + s + "\" is not valid Unicode (a lone surrogate)");
    }
  }

  private static void writeTensor(FileChannel ch, Tensor t) throws IOException {
    long bytes = t.numel() * t.dtype().byteSize();
    if (t.device().equals(Device.CPU) && t.isContiguous()) {
      MemorySegment d = t.data().asSlice(0, bytes);
      for (long pos = 0; pos < bytes; pos += CHUNK) {
        writeFully(ch, d.asSlice(pos, Math.min(CHUNK, bytes - pos)).asByteBuffer());
      }
      return;
    }
    try (Arena scratch = Arena.ofConfined()) { // another device or layout: one host copy
      MemorySegment host = scratch.allocate(bytes, 64);
      t.copyTo(host);
      for (long pos = 0; pos < bytes; pos += CHUNK) {
        writeFully(ch, host.asSlice(pos, Math.min(CHUNK, bytes - pos)).asByteBuffer());
      }
    }
  }

  private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      ch.write(b);
    }
  }

  /** Deletes temporaries of {@code base} whose writing process no longer runs. */
  private static void removeStaleTemporaries(Path dir, String base) {
    String prefix = "." + base + ".";
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, p -> {
      String n = p.getFileName().toString();
      return n.startsWith(prefix) && n.endsWith(".tmp");
    })) {
      for (Path p : s) {
        String rest = p.getFileName().toString().substring(prefix.length());
        int dash = rest.indexOf('-');
        try {
          long pid = Long.parseLong(rest.substring(0, dash));
          if (ProcessHandle.of(pid).isEmpty()) {
            Files.deleteIfExists(p);
          }
        } catch (RuntimeException | IOException notOurs) {
          // not a name this class writes, or already gone: leave it
        }
      }
    } catch (IOException ignored) {
      // the directory cannot be listed: the write itself will report what is wrong
    }
  }

  /** Makes the rename durable (best effort: not every file system lets a directory be synced). */
  private static void syncDirectory(Path dir) {
    try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
      d.force(true);
    } catch (IOException ignored) {
      // the file itself is complete and forced; only the rename's durability is left to the OS
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

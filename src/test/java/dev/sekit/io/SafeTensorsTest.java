package dev.sekit.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Round trips, zero-copy reads, and every kind of malformed file rejected before use. */
class SafeTensorsTest {
  @TempDir Path dir;

  @Test
  void roundTripKeepsNamesDtypesShapesAndValues() throws IOException {
    Path file = dir.resolve("w.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Map<String, Tensor> out = new LinkedHashMap<>();
      out.put("a.weight", Tensor.copyOf(arena, new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
      out.put("a.bias", Tensor.copyOf(arena, new double[] {-1, 0.5}, 2));
      out.put("bn.num_batches_tracked", Tensor.copyOf(arena, new long[] {7}));
      out.put("h", Tensor.copyOf(arena, new float[] {0.25f, 8f}, 2).to(DType.FLOAT16));
      SafeTensors.write(file, out, Map.of("format", "pt"));
    }
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors st = SafeTensors.open(arena, file);
      assertEquals(Map.of("format", "pt"), st.metadata());
      assertEquals(java.util.List.of("a.weight", "a.bias", "bn.num_batches_tracked", "h"),
          java.util.List.copyOf(st.entries().keySet()));
      Tensor w = st.tensor("a.weight");
      assertArrayEquals(new long[] {2, 3}, w.shape());
      assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, w.toFloatArray());
      assertEquals(st.bytes("a.weight").address(), w.dataAddress(), "aligned tensors are not copied");
      assertArrayEquals(new double[] {-1, 0.5}, st.tensor("a.bias").toDoubleArray());
      assertArrayEquals(new long[] {7}, st.tensor("bn.num_batches_tracked").toLongArray());
      assertEquals(0, st.tensor("bn.num_batches_tracked").ndim());
      assertArrayEquals(new float[] {0.25f, 8f}, st.tensor("h").to(DType.FLOAT32).toFloatArray());
      // writing through a tensor never reaches the file (private mapping)
      w.copyFrom(Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 2, 3));
    }
    try (Arena arena = Arena.ofConfined()) {
      assertEquals(1f, SafeTensors.open(arena, file).tensor("a.weight").toFloatArray()[0]);
    }
    try (var files = Files.list(dir)) {
      assertEquals(1, files.count(), "no temporary file is left behind");
    }
  }

  @Test
  void mappedFilesAreViewedWithoutACopyAndReadOnlyOnesStillLoad() throws IOException {
    Path file = dir.resolve("m.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors.write(file, Map.of("x", Tensor.copyOf(arena, new float[] {3, 4}, 2)), null);
    }
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors st = SafeTensors.openMapped(arena, file);
      Tensor x = st.tensor("x");
      assertEquals(st.bytes("x").address(), x.dataAddress(), "a mapped tensor views the mapping");
      x.copyFrom(Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 2)); // a private mapping
    }
    try (Arena arena = Arena.ofConfined()) {
      assertArrayEquals(new float[] {3, 4}, SafeTensors.open(arena, file).tensor("x").toFloatArray(),
          "writes through a mapped tensor never reach the file");
    }
    assertTrue(file.toFile().setWritable(false));
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors st = SafeTensors.openMapped(arena, file);
      Tensor x = st.tensor("x");
      assertArrayEquals(new float[] {3, 4}, x.toFloatArray());
    } finally {
      file.toFile().setWritable(true);
    }
  }

  @Test
  void aMissingFileSaysSo() {
    try (Arena arena = Arena.ofConfined()) {
      Path missing = dir.resolve("nope.safetensors");
      java.nio.file.NoSuchFileException e =
          assertThrows(java.nio.file.NoSuchFileException.class, () -> SafeTensors.open(arena, missing));
      assertEquals(missing + ": no such file", e.getMessage());
      assertThrows(java.nio.file.NoSuchFileException.class, () -> SafeTensors.openMapped(arena, missing));
    }
  }

  @Test
  void writingRefusesNullsAndNamesThatAreNotUnicode() {
    try (Arena arena = Arena.ofConfined()) {
      Tensor t = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 2);
      Map<String, String> meta = new java.util.HashMap<>();
      meta.put("kept", "yes");
      meta.put("dropped", null);
      NullPointerException e = assertThrows(NullPointerException.class,
          () -> SafeTensors.write(dir.resolve("n.safetensors"), Map.of("t", t), meta));
      assertTrue(e.getMessage().contains("metadata value for \"dropped\" is null"), e.getMessage());
      assertThrows(IllegalArgumentException.class,
          () -> SafeTensors.write(dir.resolve("n.safetensors"), Map.of("bad\ud800", t), null));
      assertThrows(IllegalArgumentException.class,
          () -> SafeTensors.write(dir.resolve("n.safetensors"), Map.of("__metadata__", t), null));
    }
  }

  private Path raw(String header, int dataBytes, Long declaredLength) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(declaredLength == null ? h.length : declaredLength);
    b.put(h);
    Path p = Files.createTempFile(dir, "bad", ".safetensors");
    Files.write(p, b.array());
    return p;
  }

  private void rejected(Path file, String fragment) {
    try (Arena arena = Arena.ofConfined()) {
      MalformedSafeTensorsException e =
          assertThrows(MalformedSafeTensorsException.class, () -> SafeTensors.open(arena, file));
      assertTrue(e.getMessage().contains(fragment), e.getMessage());
      assertEquals(file, e.file());
    }
  }

  private static final String OK_ENTRY = "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

  @Test
  void truncatedFile() throws IOException {
    Path p = dir.resolve("short.safetensors");
    Files.write(p, new byte[] {1, 2, 3});
    rejected(p, "fewer than the 8 of the header length");
  }

  @Test
  void headerLengthPastTheEnd() throws IOException {
    rejected(raw("{" + OK_ENTRY + "}", 8, 10_000L), "header length 10000 runs past the end");
  }

  @Test
  void badJson() throws IOException {
    rejected(raw("{\"t\": [1, 2", 8, null), "not valid JSON");
    rejected(raw("[1, 2, 3]", 0, null), "must begin with '{'");
  }

  @Test
  void offsetsOutOfRange() throws IOException {
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, null),
        "the tensors need 16 bytes of data but the file has 8");
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, null), "end before they begin");
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, null),
        "data_offsets[0] is not a non-negative integer: -8");
  }

  @Test
  void overlappingTensors() throws IOException {
    rejected(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, null), "overlaps");
  }

  @Test
  void gapsAndTrailingBytesAreRefusedAsTheReferenceReaderDoes() throws IOException {
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, null),
        "bytes [0, 4) of the data section belong to no tensor");
    rejected(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, null), "a gap before \"b\"");
    rejected(raw("{" + OK_ENTRY + "}", 12, null), "4 bytes after the last tensor's data");
  }

  @Test
  void onlyStandardJsonIsAccepted() throws IOException {
    String e = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    rejected(raw("{t:" + e + "}", 8, null), "expected '\"' to begin a name, found 't'");
    rejected(raw("{'t':" + e + "}", 8, null), "expected '\"' to begin a name, found '''");
    rejected(raw("{/* c */\"t\":" + e + "}", 8, null), "found '/'");
    rejected(raw("{\"t\":" + e + "} // c", 8, null), "unexpected '/' after the header's object");
    rejected(raw("{\"__metadata__\":{\"k\":NaN}," + OK_ENTRY + "}", 8, null), "expected a value, found 'N'");
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[4e0],\"data_offsets\":[0,16]}}", 16, null),
        "numbers in a safetensors header are integers, found 4e0");
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, null), "leading zeros");
    rejected(raw("{\"t\":" + e + ",\"t\":" + e + "}", 8, null), "the name \"t\" appears twice");
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, null),
        "the name \"dtype\" appears twice");
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, null),
        "unknown field \"x\"");
    rejected(raw("{\"t\\ud800\":" + e + "}", 8, null), "lone");
    rejected(raw("{\"a\":" + "[".repeat(100_000) + "}", 0, null), "nested deeper than 64 levels");
    rejected(raw(" {" + OK_ENTRY + "}", 8, null), "must begin with '{'");
    // trailing spaces (the padding writers add) are standard JSON
    try (Arena arena = Arena.ofConfined()) {
      assertEquals(1, SafeTensors.open(arena, raw("{" + OK_ENTRY + "}   ", 8, null)).entries().size());
    }
  }

  @Test
  void namesThatAreNotUtf8AreRefused() throws IOException {
    byte[] h = "{\"t\u00ff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        .getBytes(StandardCharsets.ISO_8859_1); // \u00ff as the one byte 0xff: not UTF-8
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + 8).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    Path p = dir.resolve("latin1.safetensors");
    Files.write(p, b.array());
    rejected(p, "the header is not valid UTF-8");
  }

  @Test
  void messagesQuoteTheFileNotAJsonLibrary() throws IOException {
    for (String header : new String[] {"{\"t\": [1, 2", "{t:1}", "{\"a\":tru}", "{\"a\":\"x}"}) {
      try (Arena arena = Arena.ofConfined()) {
        Path p = raw(header, 0, null);
        MalformedSafeTensorsException e =
            assertThrows(MalformedSafeTensorsException.class, () -> SafeTensors.open(arena, p));
        assertTrue(e.getMessage().matches(".*header character \\d+: .*"), e.getMessage());
        assertTrue(!e.getMessage().contains("http") && !e.getMessage().contains("setLenient"), e.getMessage());
      }
    }
  }

  @Test
  void unknownDtype() throws IOException {
    rejected(raw("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, null),
        "dtype \"F8_E4M3\", which sekit does not support");
  }

  @Test
  void shapeTimesDtypeSizeNotMatchingTheByteRange() throws IOException {
    rejected(raw("{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, null),
        "(16 bytes) but its data_offsets span 8 bytes");
  }

  @Test
  void missingFieldsAndBadMetadata() throws IOException {
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, null), "has no data_offsets");
    rejected(raw("{\"__metadata__\":{\"k\":1}," + OK_ENTRY + "}", 8, null), "__metadata__ value \"k\" is not a string");
    rejected(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, null),
        "numbers in a safetensors header are integers");
  }
}

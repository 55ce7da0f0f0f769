package dev.sekit.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.sekit.TestSupport;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Decoding, PIL's bicubic resize, timm's (torchvision's) transforms and torchvision's
 * ImageFolder against fixtures that PIL and torchvision wrote during the build
 * (src/test/python/image_fixtures.py) from Debian's lomiri-wallpapers photographs.
 */
class ImageTest {
  @TempDir Path dir;

  static Path images() {
    return TestSupport.fixtures().resolve("images");
  }

  static JsonObject index() throws IOException {
    return JsonParser.parseString(Files.readString(images().resolve("index.json"))).getAsJsonObject();
  }

  static Image read(Arena arena, String name) throws IOException {
    return Image.read(arena, images().resolve("files").resolve(name));
  }

  /** Number of bytes that differ, with a message naming the first one. */
  static void assertSameBytes(byte[] expected, byte[] actual, String what) {
    assertEquals(expected.length, actual.length, what + ": sizes differ");
    int differ = 0;
    int first = -1;
    int maxDiff = 0;
    for (int i = 0; i < expected.length; i++) {
      if (expected[i] != actual[i]) {
        if (first < 0) {
          first = i;
        }
        differ++;
        maxDiff = Math.max(maxDiff, Math.abs((expected[i] & 0xff) - (actual[i] & 0xff)));
      }
    }
    assertEquals(0, differ, what + ": " + differ + " of " + expected.length + " bytes differ from PIL's (first at "
        + first + ", largest difference " + maxDiff + ")");
  }

  @Test
  void decodingEqualsPil() throws IOException {
    JsonObject index = index();
    int jpegs = 0;
    for (JsonElement e : index.getAsJsonArray("images")) {
      JsonObject o = e.getAsJsonObject();
      String name = o.get("name").getAsString();
      try (Arena arena = Arena.ofConfined()) {
        Image img = read(arena, name);
        assertEquals(o.get("width").getAsInt(), img.width(), name);
        assertEquals(o.get("height").getAsInt(), img.height(), name);
        assertSameBytes(Files.readAllBytes(images().resolve(name + ".rgb")), img.toByteArray(),
            name + " (PIL mode " + o.get("mode").getAsString() + ")");
        if (name.endsWith(".jpg")) {
          jpegs++;
        }
      }
    }
    assertTrue(jpegs >= 8, "expected the photographs and the JPEG variants, found " + jpegs);
  }

  @Test
  void bicubicResizeEqualsPil() throws IOException {
    for (JsonElement e : index().getAsJsonArray("resize")) {
      JsonObject o = e.getAsJsonObject();
      String name = o.get("name").getAsString();
      int w = o.get("width").getAsInt();
      int h = o.get("height").getAsInt();
      try (Arena arena = Arena.ofConfined()) {
        Image r = read(arena, name).resize(arena, w, h);
        assertEquals(w, r.width());
        assertEquals(h, r.height());
        byte[] expected = Files.readAllBytes(images().resolve("resize").resolve(name + "." + w + "x" + h + ".rgb"));
        assertSameBytes(expected, r.toByteArray(), name + " resized to " + w + "x" + h);
      }
    }
  }

  static float[] floats(Path file) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    float[] f = new float[b.remaining() / 4];
    b.asFloatBuffer().get(f);
    return f;
  }

  /** Largest distance in units in the last place between two float arrays. */
  static long maxUlps(float[] expected, float[] actual) {
    assertEquals(expected.length, actual.length);
    long max = 0;
    for (int i = 0; i < expected.length; i++) {
      int a = Float.floatToIntBits(expected[i]);
      int b = Float.floatToIntBits(actual[i]);
      long ia = a < 0 ? Integer.MIN_VALUE - (long) a : a;
      long ib = b < 0 ? Integer.MIN_VALUE - (long) b : b;
      max = Math.max(max, Math.abs(ia - ib));
    }
    return max;
  }

  @Test
  void evalTransformEqualsTorchvision() throws IOException {
    long worst = 0;
    for (JsonElement e : index().getAsJsonArray("eval")) {
      JsonObject o = e.getAsJsonObject();
      String name = o.get("name").getAsString();
      int size = o.get("size").getAsInt();
      double cropPct = o.get("crop_pct").getAsDouble();
      float[] expected = floats(images().resolve("eval").resolve(name + "." + size + "_" + o.get("crop_pct")
          .getAsString() + ".f32"));
      try (Arena arena = Arena.ofConfined()) {
        ImageTransform t = ImageTransform.eval(size, cropPct);
        MemorySegment dst = arena.allocate(4L * 3 * size * size);
        t.apply(read(arena, name), dst, null);
        long ulps = maxUlps(expected, dst.toArray(ValueLayout.JAVA_FLOAT));
        assertTrue(ulps <= 1, name + ": " + ulps + " ulps from torchvision's tensor");
        worst = Math.max(worst, ulps);
      }
    }
    System.out.println("eval transform: largest difference from torchvision " + worst + " ulp");
  }

  @Test
  void resizedCropAndFlipEqualTorchvision() throws IOException {
    for (JsonElement e : index().getAsJsonArray("crop")) {
      JsonObject o = e.getAsJsonObject();
      String name = o.get("name").getAsString();
      ImageTransform.Crop c = new ImageTransform.Crop(o.get("top").getAsInt(), o.get("left").getAsInt(),
          o.get("height").getAsInt(), o.get("width").getAsInt());
      int flip = o.get("flip").getAsInt();
      try (Arena arena = Arena.ofConfined()) {
        Image r = ImageTransform.train(224).resizedCrop(arena, read(arena, name), c, flip == 1);
        String file = name + "." + c.top() + "_" + c.left() + "_" + c.height() + "_" + c.width() + "_" + flip + ".rgb";
        assertSameBytes(Files.readAllBytes(images().resolve("crop").resolve(file)), r.toByteArray(), file);
      }
    }
  }

  /**
   * The training transform reads its crop's resize and flip in place; it gives exactly the
   * tensor of the proven pieces (resizedCrop, which equals torchvision's, then normalize),
   * with and without the flip.
   */
  @Test
  void trainingTransformIsTheNormalizedResizedCrop() throws IOException {
    String name = index().getAsJsonArray("crop").get(0).getAsJsonObject().get("name").getAsString();
    ImageTransform t = ImageTransform.train(64);
    boolean[] seen = new boolean[2];
    try (Arena arena = Arena.ofConfined()) {
      Image img = read(arena, name);
      for (int seed = 0; seed < 24; seed++) {
        SplittableRandom r1 = new SplittableRandom(seed);
        SplittableRandom r2 = new SplittableRandom(seed);
        MemorySegment got = arena.allocate(4L * 3 * 64 * 64);
        t.apply(img, got, r1);
        ImageTransform.Crop c = t.randomResizedCrop(img.width(), img.height(), r2);
        boolean flip = r2.nextDouble() < 0.5;
        seen[flip ? 1 : 0] = true;
        MemorySegment want = arena.allocate(4L * 3 * 64 * 64);
        t.normalize(t.resizedCrop(arena, img, c, flip), want);
        assertEquals(-1, got.mismatch(want), "seed " + seed);
      }
    }
    assertTrue(seen[0] && seen[1], "both with and without the flip");
  }

  @Test
  void randomResizedCropsStayInRangeAndRepeatWithTheSeed() {
    ImageTransform t = ImageTransform.train(224);
    int[][] sizes = {{640, 480}, {97, 61}, {30, 400}, {1, 1}};
    for (int[] s : sizes) {
      SplittableRandom r1 = new SplittableRandom(7);
      SplittableRandom r2 = new SplittableRandom(7);
      for (int i = 0; i < 500; i++) {
        ImageTransform.Crop c = t.randomResizedCrop(s[0], s[1], r1);
        assertEquals(c, t.randomResizedCrop(s[0], s[1], r2));
        assertTrue(c.top() >= 0 && c.left() >= 0 && c.height() >= 1 && c.width() >= 1, c.toString());
        assertTrue(c.top() + c.height() <= s[1] && c.left() + c.width() <= s[0], c + " outside " + s[0] + "x" + s[1]);
      }
    }
  }

  @Test
  void imageFolderListsAsTorchvision() throws IOException {
    JsonObject folder = index().getAsJsonObject("folder");
    Path root = images().resolve("folder");
    ImageFolder data = ImageFolder.open(root, ImageTransform.eval(32, 0.88), 0);
    List<String> classes = new ArrayList<>();
    folder.getAsJsonArray("classes").forEach(c -> classes.add(c.getAsString()));
    assertEquals(classes, data.classNames());
    folder.getAsJsonObject("class_to_idx").entrySet()
        .forEach(en -> assertEquals(en.getValue().getAsInt(), data.classToIndex().get(en.getKey()), en.getKey()));
    var samples = folder.getAsJsonArray("samples");
    assertEquals(samples.size(), data.size());
    for (int i = 0; i < data.size(); i++) {
      var s = samples.get(i).getAsJsonArray();
      assertEquals(s.get(0).getAsString(), root.relativize(data.path(i)).toString(), "sample " + i);
      assertEquals(s.get(1).getAsInt(), data.label(i), "label of sample " + i);
    }
    assertArrayEquals(new long[] {3, 32, 32}, data.sampleShape());
    float[] expected = floats(images().resolve("folder_sample0.f32"));
    // Through a BatchLoader: decoded and transformed on its threads into its off-heap batch.
    int[] order = new int[data.size()];
    Arrays.setAll(order, i -> i);
    try (BatchLoader loader = new BatchLoader(data, order, 4, false, 2);
         BatchLoader.Batch b = loader.next();
         Arena arena = Arena.ofConfined()) {
      float[] x = b.inputs(arena).toFloatArray();
      long[] y = b.labels(arena).toLongArray();
      assertTrue(maxUlps(expected, Arrays.copyOf(x, expected.length)) <= 1, "sample 0 differs from torchvision's");
      for (int i = 0; i < 4; i++) {
        assertEquals(data.label(i), y[i]);
      }
    }
  }

  @Test
  void trainingFolderRepeatsPerEpochAndChangesBetweenEpochs() throws IOException {
    ImageFolder data = ImageFolder.open(images().resolve("folder"), ImageTransform.train(32), 5);
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment a = arena.allocate(4 * 3 * 32 * 32);
      MemorySegment b = arena.allocate(4 * 3 * 32 * 32);
      data.read(3, a);
      data.read(3, b);
      assertEquals(-1, a.mismatch(b), "the same (seed, epoch, index) gives the same crop");
      data.setEpoch(1);
      data.read(3, b);
      assertFalse(a.mismatch(b) == -1, "another epoch draws another crop");
    }
  }

  @Test
  void badFilesAreClearErrors() throws IOException {
    Path text = Files.writeString(dir.resolve("notes.jpg"), "not an image");
    Path empty = Files.write(dir.resolve("empty.png"), new byte[0]);
    byte[] jpeg = Files.readAllBytes(images().resolve("files").resolve("q90_420.jpg"));
    Path truncated = Files.write(dir.resolve("truncated.jpg"), Arrays.copyOf(jpeg, jpeg.length / 2));
    byte[] png = Files.readAllBytes(images().resolve("files").resolve("rgb.png"));
    Path brokenPng = Files.write(dir.resolve("broken.png"), Arrays.copyOf(png, png.length / 2));
    try (Arena arena = Arena.ofConfined()) {
      for (Path p : List.of(text, empty, truncated, brokenPng)) {
        var e = assertThrows(MalformedImageException.class, () -> Image.read(arena, p));
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
      }
      assertThrows(java.nio.file.NoSuchFileException.class, () -> Image.read(arena, dir.resolve("missing.jpg")));
      assertThrows(IllegalArgumentException.class, () -> Image.allocate(arena, 0, 5));
      assertThrows(IllegalArgumentException.class, () -> ImageTransform.eval(224, 1.5));
      Image img = Image.allocate(arena, 4, 4);
      assertThrows(IllegalArgumentException.class, () -> img.resize(arena, 0, 3));
      assertThrows(IllegalArgumentException.class,
          () -> ImageTransform.eval(8, 1).apply(img, arena.allocate(12), null));
    }
    Files.createDirectories(dir.resolve("root/cls"));
    var e = assertThrows(IllegalArgumentException.class,
        () -> ImageFolder.open(dir.resolve("root"), ImageTransform.eval(8, 1), 0));
    assertTrue(e.getMessage().contains("[cls]"), e.getMessage());
  }
}

package dev.sekit.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.FileVisitOption;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * Labelled images in folders, one sub-folder per class, as torchvision's
 * {@code ImageFolder}: the classes are the sub-folders' names in sorted order (label 0 is
 * the first), the samples every file with an image extension ({@link #EXTENSIONS}, any
 * case) anywhere under a class folder (symbolic links followed; regular files only, not
 * FIFOs or devices), in torchvision's order.
 * Each {@link #read} decodes one file and applies the {@link ImageTransform}, on the calling
 * thread, so a {@link BatchLoader} decodes on its own threads into its off-heap batches.
 *
 * <p>A training transform is random: sample {@code i} of epoch {@code e} draws its crop and
 * flip from a generator seeded by (seed, e, i), so an epoch's inputs are the same whatever
 * thread reads them; call {@link #setEpoch} before each epoch, as with PyTorch's
 * {@code DistributedSampler.set_epoch}.
 */
public final class ImageFolder implements Dataset {
  /** torchvision's {@code IMG_EXTENSIONS}. */
  public static final List<String> EXTENSIONS =
      List.of(".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp");

  /** Python's string order (by code point), which torchvision sorts names with. */
  private static final Comparator<String> PYTHON_ORDER = (a, b) -> {
    int i = 0;
    int j = 0;
    while (i < a.length() && j < b.length()) {
      int ca = a.codePointAt(i);
      int cb = b.codePointAt(j);
      if (ca != cb) {
        return Integer.compare(ca, cb);
      }
      i += Character.charCount(ca);
      j += Character.charCount(cb);
    }
    return Boolean.compare(i < a.length(), j < b.length());
  };

  private final Path root;
  private final List<String> classes;
  private final List<Path> paths;
  private final int[] labels;
  private final ImageTransform transform;
  private final long seed;
  private volatile int epoch;

  private ImageFolder(Path root, List<String> classes, List<Path> paths, int[] labels, ImageTransform transform,
      long seed) {
    this.root = root;
    this.classes = classes;
    this.paths = paths;
    this.labels = labels;
    this.transform = transform;
    this.seed = seed;
  }

  /**
   * Lists the classes and samples under {@code root}.
   *
   * @param transform what each image becomes ({@link ImageTransform#eval} or {@link ImageTransform#train})
   * @param seed the seed of a random transform
   * @throws IOException when {@code root} cannot be listed
   * @throws IllegalArgumentException when it has no class folder, or a class has no image
   */
  public static ImageFolder open(Path root, ImageTransform transform, long seed) throws IOException {
    Objects.requireNonNull(root, "root");
    Objects.requireNonNull(transform, "transform");
    if (!Files.isDirectory(root)) {
      throw Files.exists(root) ? new NotDirectoryException(root.toString()) : new NoSuchFileException(root.toString());
    }
    List<String> classes = new ArrayList<>();
    try (Stream<Path> s = Files.list(root)) {
      s.filter(Files::isDirectory).forEach(p -> classes.add(p.getFileName().toString()));
    }
    classes.sort(PYTHON_ORDER);
    if (classes.isEmpty()) {
      throw new IllegalArgumentException(root + " has no class folders (one sub-folder per class is expected)");
    }
    List<Path> paths = new ArrayList<>();
    List<Integer> labels = new ArrayList<>();
    List<String> empty = new ArrayList<>();
    for (int c = 0; c < classes.size(); c++) {
      List<Path> files = samples(root.resolve(classes.get(c)));
      if (files.isEmpty()) {
        empty.add(classes.get(c));
      }
      paths.addAll(files);
      for (int i = 0; i < files.size(); i++) {
        labels.add(c);
      }
    }
    if (!empty.isEmpty()) {
      throw new IllegalArgumentException(root + ": no image file (" + String.join(", ", EXTENSIONS)
          + ") for the classes [" + few(empty) + "]; put images in each class folder, or remove the empty ones");
    }
    int[] l = labels.stream().mapToInt(Integer::intValue).toArray();
    return new ImageFolder(root, Collections.unmodifiableList(classes), List.copyOf(paths), l, transform, seed);
  }

  /**
   * Names for a message: all of them up to 8, else the first 8 and how many there are (a
   * folder of 1000 classes would make a message of 10,000 characters).
   */
  static String few(List<String> names) {
    if (names.size() <= 8) {
      return String.join(", ", names);
    }
    return String.join(", ", names.subList(0, 8)) + ", ... (" + names.size() + " in all)";
  }

  /** torchvision's make_dataset for one class: os.walk sorted by directory, files sorted by name. */
  private static List<Path> samples(Path classDir) throws IOException {
    List<Path> dirs;
    try (Stream<Path> s = Files.walk(classDir, FileVisitOption.FOLLOW_LINKS)) {
      dirs = s.filter(Files::isDirectory).toList();
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
    List<Path> sorted = new ArrayList<>(dirs);
    sorted.sort(Comparator.comparing(Path::toString, PYTHON_ORDER));
    List<Path> out = new ArrayList<>();
    for (Path d : sorted) {
      List<Path> files = new ArrayList<>();
      try (Stream<Path> s = Files.list(d)) {
        // Regular files only (links followed): a FIFO named x.jpg would block its reader in
        // open(2) forever, a socket or device cannot be an image.
        s.filter(ImageFolder::hasImageExtension).filter(Files::isRegularFile).forEach(files::add);
      }
      files.sort(Comparator.comparing(p -> p.getFileName().toString(), PYTHON_ORDER));
      out.addAll(files);
    }
    return out;
  }

  private static boolean hasImageExtension(Path p) {
    String name = p.getFileName().toString().toLowerCase(Locale.ROOT);
    for (String e : EXTENSIONS) {
      if (name.endsWith(e)) {
        return true;
      }
    }
    return false;
  }

  /** The folder this data set lists. */
  public Path root() {
    return root;
  }

  /** The class names in label order. */
  public List<String> classNames() {
    return classes;
  }

  /** torchvision's {@code class_to_idx}. */
  public Map<String, Integer> classToIndex() {
    Map<String, Integer> m = new LinkedHashMap<>();
    for (int i = 0; i < classes.size(); i++) {
      m.put(classes.get(i), i);
    }
    return Collections.unmodifiableMap(m);
  }

  /** The file of sample {@code index}. */
  public Path path(int index) {
    return paths.get(index);
  }

  /** The label of sample {@code index}. */
  public int label(int index) {
    return labels[Objects.checkIndex(index, labels.length)];
  }

  /** The transform each image goes through. */
  public ImageTransform transform() {
    return transform;
  }

  /** Sets the epoch whose random crops and flips {@link #read} draws (training transforms). */
  @Override
  public void setEpoch(int epoch) {
    if (epoch < 0) {
      throw new IllegalArgumentException("epoch must be >= 0, got " + epoch);
    }
    this.epoch = epoch;
  }

  @Override
  public int size() {
    return paths.size();
  }

  @Override
  public long[] sampleShape() {
    return transform.outputShape();
  }

  @Override
  public int classes() {
    return classes.size();
  }

  /**
   * Decodes sample {@code index}, transforms it into {@code dst} (float32 3 × size × size)
   * and returns its label.
   *
   * @throws UncheckedIOException when the file cannot be read (the message names it and why)
   * @throws MalformedImageException when it cannot be decoded or is over {@link Image#maxPixels()}
   *     (the message names it)
   */
  @Override
  public long read(int index, MemorySegment dst) {
    Objects.checkIndex(index, paths.size());
    SplittableRandom random = transform.isRandom()
        ? new SplittableRandom(seed * 0x9E3779B97F4A7C15L + ((long) epoch << 32) + index)
        : null;
    try (Arena arena = Arena.ofConfined()) {
      Image image = Image.read(arena, paths.get(index));
      transform.apply(image, dst, random);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read sample " + index + ", " + paths.get(index) + ": " + reason(e), e);
    }
    return labels[index];
  }

  /** What went wrong with a file, without repeating its name (which a FileSystemException's message is). */
  static String reason(IOException e) {
    if (e instanceof NoSuchFileException) {
      return "no such file (was it moved or deleted after the folder was listed? list it again)";
    }
    if (e instanceof java.nio.file.AccessDeniedException) {
      return "permission denied (make it readable)";
    }
    if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
      return f.getReason();
    }
    return e.getMessage() == null ? e.getClass().getSimpleName() : Image.shorten(e.getMessage(), 300);
  }
}

package dev.sekit.app;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import dev.sekit.data.Dataset;
import dev.sekit.data.ImageFolder;
import dev.sekit.data.ImageTransform;
import dev.sekit.data.InMemoryDataset;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The data of {@code sekit finetune}: a training and a test {@link Dataset} and the class
 * names. Anything that implements {@code Dataset} can stand here; this build reads
 * <ul>
 *   <li>an image folder as torchvision's {@code ImageFolder}: {@code DIR/train/CLASS/*} and
 *       {@code DIR/val/CLASS/*} (or {@code DIR/test}), through timm's training transform
 *       (random-resized crop and flip) and its evaluation transform, or
 *   <li>a directory of IDX files (MNIST's layout), whose grey images it gives three channels
 *       normalised with ImageNet's mean and std (the statistics timm's VoVNets were trained
 *       with), padded with black to at least {@link #MIN_SIZE} pixels a side (a VoVNet pools
 *       four times).
 * </ul>
 */
final class FinetuneData {
  /** The smallest image side a VoVNet takes (stride 4 then three ceil-mode poolings). */
  static final int MIN_SIZE = 32;

  private FinetuneData() {}

  /** Training and test data with their class names; closing frees the data. */
  record Split(Dataset train, Dataset test, List<String> classNames, List<InMemoryDataset> owned)
      implements AutoCloseable {
    @Override
    public void close() {
      owned.forEach(InMemoryDataset::close);
    }
  }

  /** How an image folder's images become tensors: timm's transforms at {@code size}. */
  record Images(int size, double cropPct, boolean augment, long seed) {}

  /**
   * The data in {@code dir}. {@code classes}: the class names in label order, or one number
   * (their count), or null to take the count from the labels (an image folder names its
   * classes itself).
   */
  static Split load(Path dir, List<String> classes, Integer limitTrain, Integer limitTest, Images images)
      throws IOException {
    if (!Files.isDirectory(dir)) {
      throw new IllegalArgumentException("--data: no such directory " + dir);
    }
    if (Files.isDirectory(dir.resolve("train"))) {
      return folders(dir, classes, limitTrain, limitTest, images);
    }
    Path trainImages = idx(dir, "train-images-idx3-ubyte");
    if (trainImages == null) {
      throw new IllegalArgumentException("--data " + dir + ": neither an image folder (DIR/train/CLASS/*, "
          + "DIR/val/CLASS/*) nor IDX files (train-images-idx3-ubyte[.gz] and the rest of MNIST's layout)");
    }
    InMemoryDataset train = null;
    InMemoryDataset test = null;
    try {
      train = InMemoryDataset.fromIdx(trainImages, required(dir, "train-labels-idx1-ubyte"), 256, 0, 1,
          limitTrain == null ? Integer.MAX_VALUE : limitTrain);
      test = InMemoryDataset.fromIdx(required(dir, "t10k-images-idx3-ubyte"), required(dir, "t10k-labels-idx1-ubyte"),
          256, 0, 1, limitTest == null ? Integer.MAX_VALUE : limitTest);
      long maxLabel = 0;
      for (InMemoryDataset d : List.of(train, test)) {
        for (int i = 0; i < d.size(); i++) {
          maxLabel = Math.max(maxLabel, d.label(i));
        }
      }
      List<String> names = classNames(classes, (int) maxLabel + 1);
      return new Split(new Rgb(train, names.size()), new Rgb(test, names.size()), names, List.of(train, test));
    } catch (RuntimeException e) {
      if (train != null) {
        train.close();
      }
      if (test != null) {
        test.close();
      }
      throw e;
    }
  }

  private static Split folders(Path dir, List<String> classes, Integer limitTrain, Integer limitTest, Images images)
      throws IOException {
    Path val = Files.isDirectory(dir.resolve("val")) ? dir.resolve("val") : dir.resolve("test");
    if (!Files.isDirectory(val)) {
      throw new IllegalArgumentException("--data " + dir + ": a train folder but no val (or test) folder beside it");
    }
    ImageTransform eval = ImageTransform.eval(images.size(), images.cropPct());
    ImageFolder train = ImageFolder.open(dir.resolve("train"), images.augment() ? ImageTransform.train(images.size())
        : eval, images.seed());
    ImageFolder test = ImageFolder.open(val, eval, images.seed());
    if (!train.classNames().equals(test.classNames())) {
      throw new IllegalArgumentException("--data " + dir + ": train and " + val.getFileName() + " differ in their "
          + "classes (the folders inside them): only in train: " + few(minus(train.classNames(),
          test.classNames())) + "; only in " + val.getFileName() + ": " + few(minus(test.classNames(),
          train.classNames())) + "; give both the same class folders");
    }
    if (classes != null && !classes.isEmpty() && !classes.equals(train.classNames())
        && !(classes.size() == 1 && classes.get(0).equals(Integer.toString(train.classes())))) {
      throw new IllegalArgumentException("--classes " + few(classes) + " does not match the folders' classes ["
          + few(train.classNames()) + "] (an image folder names its classes; leave --classes out)");
    }
    return new Split(Spread.of(train, limitTrain), Spread.of(test, limitTest), train.classNames(), List.of());
  }

  /** Names for a message: up to 5, else the first 5 and how many (1000 classes would fill pages). */
  private static String few(List<String> names) {
    return names.size() <= 5 ? String.join(", ", names)
        : String.join(", ", names.subList(0, 5)) + ", ... (" + names.size() + " in all)";
  }

  /** The names of {@code a} that {@code b} lacks, in order; "none" when there is none. */
  private static List<String> minus(List<String> a, List<String> b) {
    java.util.Set<String> in = new java.util.HashSet<>(b);
    List<String> out = a.stream().filter(x -> !in.contains(x)).toList();
    return out.isEmpty() ? List.of("none") : out;
  }

  /**
   * The first {@code n} of {@code size} samples spread evenly over the data set: an image
   * folder lists its samples class by class, so its first n would hold only the first classes.
   */
  private record Spread(Dataset data, int n) implements Dataset {
    static Dataset of(Dataset d, Integer limit) {
      return limit == null || limit >= d.size() ? d : new Spread(d, Math.max(1, limit));
    }

    private int at(int index) {
      return (int) ((long) index * data.size() / n);
    }

    @Override
    public int size() {
      return n;
    }

    @Override
    public long[] sampleShape() {
      return data.sampleShape();
    }

    @Override
    public int classes() {
      return data.classes();
    }

    @Override
    public long read(int index, MemorySegment dst) {
      return data.read(at(index), dst);
    }

    @Override
    public void setEpoch(int epoch) {
      data.setEpoch(epoch);
    }
  }

  private static List<String> classNames(List<String> classes, int seen) {
    List<String> names = new ArrayList<>();
    if (classes == null || classes.isEmpty()) {
      for (int i = 0; i < seen; i++) {
        names.add(Integer.toString(i));
      }
      return names;
    }
    if (classes.size() == 1 && classes.get(0).matches("\\d+")) {
      int n = Integer.parseInt(classes.get(0));
      for (int i = 0; i < n; i++) {
        names.add(Integer.toString(i));
      }
    } else {
      names.addAll(classes);
    }
    if (names.size() < Math.max(seen, 2)) {
      throw new IllegalArgumentException("--classes names " + names.size() + " classes, but the labels go up to "
          + (seen - 1) + " (and fine-tuning needs at least 2 classes)");
    }
    return names;
  }

  private static Path idx(Path dir, String name) {
    for (String n : List.of(name + ".gz", name)) {
      if (Files.isRegularFile(dir.resolve(n))) {
        return dir.resolve(n);
      }
    }
    return null;
  }

  private static Path required(Path dir, String name) {
    Path p = idx(dir, name);
    if (p == null) {
      throw new IllegalArgumentException("--data " + dir + ": no " + name + "[.gz]");
    }
    return p;
  }

  /** Grey images in [0, 1] as three normalised channels, centred on a black square of at least MIN_SIZE. */
  private record Rgb(InMemoryDataset grey, int classes) implements Dataset {
    private int h() {
      return (int) grey.sampleShape()[1];
    }

    private int w() {
      return (int) grey.sampleShape()[2];
    }

    @Override
    public int size() {
      return grey.size();
    }

    @Override
    public long[] sampleShape() {
      return new long[] {3, Math.max(MIN_SIZE, h()), Math.max(MIN_SIZE, w())};
    }

    @Override
    public long read(int index, MemorySegment dst) {
      int h = h();
      int w = w();
      int oh = Math.max(MIN_SIZE, h);
      int ow = Math.max(MIN_SIZE, w);
      int top = (oh - h) / 2;
      int left = (ow - w) / 2;
      try (Arena a = Arena.ofConfined()) {
        MemorySegment g = a.allocate(grey.sampleBytes(), 64);
        long label = grey.read(index, g);
        for (int c = 0; c < 3; c++) {
          long plane = (long) c * oh * ow;
          for (int y = 0; y < oh; y++) {
            for (int x = 0; x < ow; x++) {
              int sy = y - top;
              int sx = x - left;
              float v = sy >= 0 && sy < h && sx >= 0 && sx < w ? g.getAtIndex(JAVA_FLOAT, (long) sy * w + sx) : 0f;
              dst.setAtIndex(JAVA_FLOAT, plane + (long) y * ow + x, (v - ImageTransform.IMAGENET_MEAN[c]) / ImageTransform.IMAGENET_STD[c]);
            }
          }
        }
        return label;
      }
    }
  }
}

package dev.sekit.app;

import dev.sekit.data.InMemoryDataset;
import java.nio.file.Path;

/**
 * The demo's data: Fashion-MNIST (Zalando, 70,000 28×28 grey images in 10 classes) from the
 * IDX files Debian's {@code dataset-fashion-mnist} installs, read by the library's
 * {@link InMemoryDataset#fromIdx}.
 */
final class FashionMnist {
  /** Where Debian's dataset-fashion-mnist puts the files. */
  static final Path DEBIAN_DIR = Path.of("/usr/share/datasets/fashion-mnist");
  /** Mean and standard deviation of the training pixels (in [0, 1]). */
  static final double MEAN = 0.2860;
  static final double STD = 0.3530;
  static final int CLASSES = 10;
  /** The value a black pixel has after normalisation (for padding). */
  static final double BLACK = -MEAN / STD;

  private FashionMnist() {}

  /** The first {@code limit} samples of split "train" or "test". */
  static InMemoryDataset load(Path dir, String split, int limit) {
    String prefix = switch (split) {
      case "train" -> "train";
      case "test" -> "t10k";
      default -> throw new IllegalArgumentException("split must be 'train' or 'test', got '" + split + "'");
    };
    Path images = dir.resolve(prefix + "-images-idx3-ubyte.gz");
    Path labels = dir.resolve(prefix + "-labels-idx1-ubyte.gz");
    try {
      return InMemoryDataset.fromIdx(images, labels, CLASSES, MEAN, STD, limit);
    } catch (InMemoryDataset.MalformedDataException e) {
      throw new IllegalArgumentException(e.getMessage() + "; Debian's dataset-fashion-mnist provides these files "
          + "(apt-get install -y dataset-fashion-mnist)", e);
    }
  }
}

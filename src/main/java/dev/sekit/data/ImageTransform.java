package dev.sekit.data;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import dev.sekit.DType;
import dev.sekit.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.random.RandomGenerator;

/**
 * timm's image preprocessing for a classifier, on {@link Image}s, into normalised float32
 * CHW tensors (3 × size × size).
 *
 * <ul>
 *   <li>{@link #eval(int, double)}: timm's {@code transforms_imagenet_eval} — resize the
 *       shorter side to {@code floor(size / cropPct)} (bicubic), centre crop {@code size},
 *       scale to [0, 1], normalise with ImageNet's mean and std. VoVNets (and timm's
 *       defaults) use size 224, crop 0.875.
 *   <li>{@link #train(int)}: timm's random-resized crop (area 8 %–100 %, aspect ratio
 *       3/4–4/3, bicubic) and a horizontal flip with probability 1/2, then the same
 *       normalisation; the random choices come from the caller's generator.
 * </ul>
 *
 * <p>Every step equals torchvision's on PIL images bit for bit (the resize is PIL's), and
 * the float steps are the same float32 operations as {@code ToTensor} and
 * {@code Normalize}: {@code (p / 255 - mean) / std}.
 */
public final class ImageTransform {
  /** ImageNet's channel means (timm's {@code IMAGENET_DEFAULT_MEAN}). */
  public static final float[] IMAGENET_MEAN = {0.485f, 0.456f, 0.406f};
  /** ImageNet's channel standard deviations (timm's {@code IMAGENET_DEFAULT_STD}). */
  public static final float[] IMAGENET_STD = {0.229f, 0.224f, 0.225f};

  /**
   * The largest output size and shorter side to resize to: 16384 pixels (a 16384² RGB image
   * is 805 MB, and a 3 × 16384² float32 output 3.2 GB).
   */
  public static final int MAX_SIZE = 16384;

  private final boolean train;
  private final int size;
  private final double cropPct;
  private final double minScale;
  private final double maxScale;
  private final double minRatio;
  private final double maxRatio;
  private final double flipProbability;
  private final float[] mean;
  private final float[] std;

  private ImageTransform(boolean train, int size, double cropPct, double minScale, double maxScale, double minRatio,
      double maxRatio, double flipProbability, float[] mean, float[] std) {
    if (size < 1 || size > MAX_SIZE) {
      throw new IllegalArgumentException("size must be in [1, " + MAX_SIZE + "] pixels, got " + size);
    }
    if (!train && Math.floor(size / cropPct) > MAX_SIZE) {
      throw new IllegalArgumentException("size " + size + " with cropPct " + cropPct + " resizes the shorter side to "
          + String.format(java.util.Locale.ROOT, "%.0f", Math.floor(size / cropPct)) + " pixels, more than "
          + MAX_SIZE + "; use a larger cropPct (0.875 is timm's default) or a smaller size");
    }
    Objects.requireNonNull(mean, "mean");
    Objects.requireNonNull(std, "std");
    if (mean.length != 3 || std.length != 3) {
      throw new IllegalArgumentException("mean and std need 3 values (R, G, B), got " + mean.length + " and "
          + std.length);
    }
    for (float s : std) {
      if (!(s > 0)) {
        throw new IllegalArgumentException("std values must be > 0, got " + s);
      }
    }
    this.train = train;
    this.size = size;
    this.cropPct = cropPct;
    this.minScale = minScale;
    this.maxScale = maxScale;
    this.minRatio = minRatio;
    this.maxRatio = maxRatio;
    this.flipProbability = flipProbability;
    this.mean = mean.clone();
    this.std = std.clone();
  }

  /** timm's evaluation transform with ImageNet's mean and std. */
  public static ImageTransform eval(int size, double cropPct) {
    return eval(size, cropPct, IMAGENET_MEAN, IMAGENET_STD);
  }

  /** timm's evaluation transform: shorter side to {@code floor(size / cropPct)}, centre crop. */
  public static ImageTransform eval(int size, double cropPct, float[] mean, float[] std) {
    if (!(cropPct > 0 && cropPct <= 1)) {
      throw new IllegalArgumentException("cropPct must be in (0, 1], got " + cropPct);
    }
    return new ImageTransform(false, size, cropPct, 1, 1, 1, 1, 0, mean, std);
  }

  /** timm's training transform with its defaults and ImageNet's mean and std. */
  public static ImageTransform train(int size) {
    return train(size, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0, 0.5, IMAGENET_MEAN, IMAGENET_STD);
  }

  /**
   * A random-resized crop of an area in {@code [minScale, maxScale]} of the image's and an
   * aspect ratio in {@code [minRatio, maxRatio]} (log-uniform), resized to {@code size²}
   * (bicubic), flipped left-right with probability {@code flipProbability}.
   */
  public static ImageTransform train(int size, double minScale, double maxScale, double minRatio, double maxRatio,
      double flipProbability, float[] mean, float[] std) {
    if (!(minScale > 0 && minScale <= maxScale && maxScale <= 1)) {
      throw new IllegalArgumentException("need 0 < minScale <= maxScale <= 1, got " + minScale + ", " + maxScale);
    }
    if (!(minRatio > 0 && minRatio <= maxRatio)) {
      throw new IllegalArgumentException("need 0 < minRatio <= maxRatio, got " + minRatio + ", " + maxRatio);
    }
    if (!(flipProbability >= 0 && flipProbability <= 1)) {
      throw new IllegalArgumentException("flipProbability must be in [0, 1], got " + flipProbability);
    }
    return new ImageTransform(true, size, 1, minScale, maxScale, minRatio, maxRatio, flipProbability, mean, std);
  }

  /** The output's side. */
  public int size() {
    return size;
  }

  /** Whether this is the (random) training transform. */
  public boolean isRandom() {
    return train;
  }

  /** The shape of one output: {@code [3, size, size]}. */
  public long[] outputShape() {
    return new long[] {3, size, size};
  }

  /** The shorter side the evaluation transform resizes to: timm's {@code floor(size / cropPct)}. */
  public int resizeSize() {
    return (int) Math.floor(size / cropPct);
  }

  /**
   * Writes the transformed image into {@code dst} (float32, 3 × size × size, CHW). The
   * training transform draws its crop and flip from {@code random}; the evaluation
   * transform ignores it (it may be null).
   */
  public void apply(Image image, MemorySegment dst, RandomGenerator random) {
    Objects.requireNonNull(image, "image");
    checkDst(dst);
    try (Arena tmp = Arena.ofConfined()) {
      if (train) {
        Objects.requireNonNull(random, "random (the training transform is random)");
        Crop c = randomResizedCrop(image.width(), image.height(), random);
        boolean flip = random.nextDouble() < flipProbability;
        normalize(cropResize(tmp, image, c), 0, 0, flip, dst); // the flip is read, not copied
      } else {
        // An image already at the resize's size is read as it is (resizeShorterSide would copy it).
        Image r = Math.min(image.width(), image.height()) == resizeSize() ? image
            : image.resizeShorterSide(tmp, resizeSize());
        int left = Image.centerOffset(r.width(), size);
        int top = Image.centerOffset(r.height(), size);
        if (left >= 0 && top >= 0) {
          normalize(r, left, top, false, dst); // the centre crop is read in place
        } else { // a crop larger than the resized image (crop_pct > 1): padded with black
          normalize(r.centerCrop(tmp, size, size), 0, 0, false, dst);
        }
      }
    }
  }

  /** The evaluation transform of {@code image} as a new tensor [1, 3, size, size] in {@code arena}. */
  public Tensor toTensor(Arena arena, Image image) {
    if (train) {
      throw new IllegalStateException("the training transform is random: use apply(image, dst, random)");
    }
    MemorySegment dst = arena.allocate(4L * 3 * size * size, 64);
    apply(image, dst, null);
    return Tensor.wrap(arena, dst, DType.FLOAT32, 1, 3, size, size);
  }

  /** A crop box: rows {@code [top, top + height)}, columns {@code [left, left + width)}. */
  public record Crop(int top, int left, int height, int width) {}

  /**
   * torchvision's {@code RandomResizedCrop.get_params} with {@code random} as the source:
   * ten tries of an area fraction (uniform) and an aspect ratio (log-uniform) whose box fits,
   * rounding as Python does; else the central crop clamped to the ratio range.
   */
  public Crop randomResizedCrop(int width, int height, RandomGenerator random) {
    double area = (double) height * width;
    double logMin = Math.log(minRatio);
    double logMax = Math.log(maxRatio);
    for (int attempt = 0; attempt < 10; attempt++) {
      double targetArea = area * uniform(random, minScale, maxScale);
      double aspect = Math.exp(uniform(random, logMin, logMax));
      int w = (int) Math.rint(Math.sqrt(targetArea * aspect));
      int h = (int) Math.rint(Math.sqrt(targetArea / aspect));
      if (0 < w && w <= width && 0 < h && h <= height) {
        int top = random.nextInt(height - h + 1);
        int left = random.nextInt(width - w + 1);
        return new Crop(top, left, h, w);
      }
    }
    double inRatio = (double) width / height;
    int w;
    int h;
    if (inRatio < minRatio) {
      w = width;
      h = (int) Math.rint(w / minRatio);
    } else if (inRatio > maxRatio) {
      h = height;
      w = (int) Math.rint(h * maxRatio);
    } else {
      w = width;
      h = height;
    }
    return new Crop((height - h) / 2, (width - w) / 2, h, w);
  }

  private static double uniform(RandomGenerator r, double lo, double hi) {
    return lo == hi ? lo : lo + (hi - lo) * r.nextDouble();
  }

  /**
   * The deterministic part of the training transform: torchvision's
   * {@code F.resized_crop(img, top, left, height, width, [size, size], BICUBIC)} (crop, then
   * PIL's resize), then {@code F.hflip} when {@code flip}.
   */
  public Image resizedCrop(Arena arena, Image image, Crop crop, boolean flip) {
    Objects.requireNonNull(crop, "crop");
    if (!flip) {
      return cropResize(arena, image, crop);
    }
    try (Arena tmp = Arena.ofConfined()) {
      return cropResize(tmp, image, crop).flipHorizontal(arena);
    }
  }

  private Image cropResize(Arena arena, Image image, Crop crop) {
    if (crop.height() < 1 || crop.width() < 1) {
      throw new IllegalArgumentException("a crop needs a size of at least 1x1, got " + crop);
    }
    try (Arena tmp = Arena.ofConfined()) {
      return image.crop(tmp, crop.left(), crop.top(), crop.width(), crop.height()).resize(arena, size, size);
    }
  }

  /**
   * torchvision's {@code ToTensor} then {@code Normalize(mean, std)} of a size × size image
   * into {@code dst} (float32 CHW): {@code (p / 255f - mean) / std} in float32, as PyTorch.
   */
  public void normalize(Image image, MemorySegment dst) {
    Objects.requireNonNull(image, "image");
    checkDst(dst);
    if (image.width() != size || image.height() != size) {
      throw new IllegalArgumentException("the image is " + image.width() + "x" + image.height() + ", expected "
          + size + "x" + size);
    }
    normalize(image, 0, 0, false, dst);
  }

  /**
   * {@link #normalize(Image, MemorySegment)} of the size × size window of {@code image} at
   * ({@code left}, {@code top}) (inside it), mirrored left to right when {@code flip}: what a
   * crop and a flip would give, without copying the image for either.
   */
  private void normalize(Image image, int left, int top, boolean flip, MemorySegment dst) {
    int plane = size * size;
    byte[] row = new byte[3 * size];
    float[] out = new float[size];
    for (int y = 0; y < size; y++) {
      MemorySegment.copy(image.pixels(), JAVA_BYTE, ((long) (top + y) * image.width() + left) * 3, row, 0, row.length);
      for (int c = 0; c < 3; c++) {
        float m = mean[c];
        float s = std[c];
        for (int x = 0; x < size; x++) {
          float v = (row[3 * (flip ? size - 1 - x : x) + c] & 0xff) / 255f;
          out[x] = (v - m) / s;
        }
        MemorySegment.copy(out, 0, dst, JAVA_FLOAT, 4L * ((long) c * plane + (long) y * size), size);
      }
    }
  }

  private void checkDst(MemorySegment dst) {
    Objects.requireNonNull(dst, "dst");
    long need = 4L * 3 * size * size;
    if (dst.byteSize() != need) {
      throw new IllegalArgumentException("dst holds " + dst.byteSize() + " bytes, expected " + need
          + " (float32 3x" + size + "x" + size + ")");
    }
  }

  @Override
  public String toString() {
    return train
        ? "ImageTransform.train(size " + size + ", scale " + minScale + ".." + maxScale + ", ratio " + minRatio + ".."
            + maxRatio + ", flip " + flipProbability + ")"
        : "ImageTransform.eval(size " + size + ", crop " + cropPct + ", resize " + resizeSize() + ")";
  }
}

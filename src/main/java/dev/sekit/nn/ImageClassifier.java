package dev.sekit.nn;

import dev.sekit.Tensor;
import dev.sekit.data.Image;
import dev.sekit.data.ImageNetClasses;
import dev.sekit.data.ImageTransform;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

/**
 * Classifies images with a model: decode, the model's evaluation preprocessing, the
 * prepared (inference) forward, softmax, the top classes.
 *
 * <pre>{@code
 * try (Arena arena = Arena.ofConfined()) {
 *   VoVNet net = VoVNet.create(arena, "ese_vovnet19b_dw");
 *   net.loadStateDict(SafeTensors.open(arena, Path.of("ese_vovnet19b_dw.safetensors")).tensors());
 *   ImageClassifier classifier = ImageClassifier.imageNet(net, ImageTransform.eval(224, 0.875));
 *   for (ImageClassifier.Prediction p : classifier.classify(Path.of("cat.jpg"), 5)) {
 *     System.out.println(p);
 *   }
 * }
 * }</pre>
 *
 * Not thread-safe (it shares the model's arena and plan).
 */
public final class ImageClassifier {
  /** One class: its index (logit), name and softmax probability. */
  public record Prediction(int index, String label, double probability) {
    @Override
    public String toString() {
      return String.format(java.util.Locale.ROOT, "%6.2f%%  %4d  %s", 100 * probability, index, label);
    }
  }

  private final InferenceModule model;
  private final ImageTransform transform;
  private final List<String> labels;

  private ImageClassifier(InferenceModule model, ImageTransform transform, List<String> labels) {
    this.model = model;
    this.transform = transform;
    this.labels = labels;
  }

  /**
   * A classifier of {@code model} (put in evaluation mode and prepared for inference) that
   * feeds it {@code transform}'s output and names logit {@code i} {@code labels.get(i)}.
   */
  public static ImageClassifier of(Module model, ImageTransform transform, List<String> labels) {
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(transform, "transform");
    Objects.requireNonNull(labels, "labels");
    if (transform.isRandom()) {
      throw new IllegalArgumentException("a classifier needs an evaluation transform, got " + transform);
    }
    model.eval();
    return new ImageClassifier(model.prepareForInference(), transform, List.copyOf(labels));
  }

  /** A classifier of a model with ImageNet-1k's 1000 classes ({@link ImageNetClasses}). */
  public static ImageClassifier imageNet(Module model, ImageTransform transform) {
    return of(model, transform, ImageNetClasses.names());
  }

  /** The {@code k} most probable classes of the image file, most probable first. */
  public List<Prediction> classify(Path image, int k) throws IOException {
    try (Arena arena = Arena.ofConfined()) {
      return classify(Image.read(arena, image), k);
    }
  }

  /** The {@code k} most probable classes of {@code image}, most probable first. */
  public List<Prediction> classify(Image image, int k) {
    try (Arena arena = Arena.ofConfined()) {
      Tensor x = transform.toTensor(arena, image);
      Tensor logits = model.forward(arena, x);
      float[] z = logits.toFloatArray();
      if (z.length != labels.size()) {
        throw new IllegalStateException("the model gives " + z.length + " logits but there are " + labels.size()
            + " labels");
      }
      return top(z, k, labels);
    }
  }

  /** The softmax of {@code logits}, its {@code k} largest entries with their labels. */
  public static List<Prediction> top(float[] logits, int k, List<String> labels) {
    if (k < 1) {
      throw new IllegalArgumentException("k must be >= 1, got " + k);
    }
    double max = Double.NEGATIVE_INFINITY;
    for (float v : logits) {
      max = Math.max(max, v);
    }
    double[] p = new double[logits.length];
    double sum = 0;
    for (int i = 0; i < logits.length; i++) {
      p[i] = Math.exp(logits[i] - max);
      sum += p[i];
    }
    Integer[] order = new Integer[logits.length];
    Arrays.setAll(order, i -> i);
    // Stable: equal logits keep index order, as torch.topk on CPU.
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -logits[i]));
    List<Prediction> out = new ArrayList<>();
    for (int j = 0; j < Math.min(k, logits.length); j++) {
      int i = order[j];
      out.add(new Prediction(i, i < labels.size() ? labels.get(i) : "class " + i, p[i] / sum));
    }
    return out;
  }
}

package dev.sekit.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The names of ImageNet-1k's 1000 classes, in the order of the logits of a model trained on
 * it (timm's and torchvision's), as torchvision lists them
 * ({@code torchvision.models._meta._IMAGENET_CATEGORIES}; the resource file is written by
 * {@code src/main/python/imagenet_classes.py}).
 */
public final class ImageNetClasses {
  private ImageNetClasses() {}

  private static final class Holder {
    static final List<String> NAMES = load();
  }

  /** The 1000 names; index {@code i} is logit {@code i}'s class. */
  public static List<String> names() {
    return Holder.NAMES;
  }

  private static List<String> load() {
    try (InputStream in = ImageNetClasses.class.getResourceAsStream("imagenet_classes.txt")) {
      if (in == null) {
        throw new IllegalStateException("the resource dev/sekit/data/imagenet_classes.txt is missing from the jar");
      }
      List<String> names = new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList();
      if (names.size() != 1000) {
        throw new IllegalStateException("imagenet_classes.txt holds " + names.size() + " names, expected 1000");
      }
      return names;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}

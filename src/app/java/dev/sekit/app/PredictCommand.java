package dev.sekit.app;

import dev.sekit.Sekit;
import dev.sekit.data.ImageTransform;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.ImageClassifier;
import dev.sekit.nn.Module;
import dev.sekit.nn.ResNet;
import dev.sekit.nn.VoVNet;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code sekit predict}: ImageNet top-5 of images with a timm checkpoint. */
@Command(name = "predict", mixinStandardHelpOptions = true,
    description = "Classify images with a timm VoVNet or ResNet checkpoint (safetensors) and print the top "
        + "classes with ImageNet's names. Preprocessing is timm's evaluation transform (resize the shorter side "
        + "to floor(size / crop-pct), bicubic; centre crop; ImageNet mean and std).")
final class PredictCommand implements Callable<Integer> {
  @Option(names = "--model", required = true,
      description = "timm model name, e.g. ese_vovnet19b_dw, ese_vovnet39b, seresnet50.")
  String model;

  @Option(names = "--weights", required = true, description = "The model's state dict as a .safetensors file.")
  Path weights;

  @Option(names = "--size", description = "Input size (the crop's side). Default: ${DEFAULT-VALUE}.")
  int size = 224;

  @Option(names = "--crop-pct", description = "timm's crop_pct: the shorter side is resized to "
      + "floor(size / crop-pct). Default: ${DEFAULT-VALUE}.")
  double cropPct = 0.875;

  @Option(names = "--top", description = "How many classes to print per image. Default: ${DEFAULT-VALUE}.")
  int top = 5;

  @Option(names = "--threads", description = "Intra-op threads. Default: the machine's cores.")
  Integer threads;

  @Parameters(arity = "1..*", paramLabel = "IMAGE", description = "JPEG, PNG or BMP files.")
  List<Path> images = new ArrayList<>();

  @Override
  public Integer call() throws Exception {
    if (threads != null) {
      Sekit.setNumThreads(threads);
    }
    try (Arena arena = Arena.ofConfined()) {
      Module net = create(arena, model);
      SafeTensors file;
      try {
        file = SafeTensors.open(arena, weights);
      } catch (IOException e) {
        throw new IllegalArgumentException(problem(weights, e), e);
      }
      net.loadStateDict(file.tensors(), true, true);
      ImageClassifier classifier = ImageClassifier.imageNet(net, ImageTransform.eval(size, cropPct));
      for (Path image : images) {
        List<ImageClassifier.Prediction> best;
        try {
          best = classifier.classify(image, top);
        } catch (IOException e) {
          throw new IllegalArgumentException(problem(image, e), e);
        }
        System.out.println(image);
        for (ImageClassifier.Prediction p : best) {
          System.out.println("  " + p);
        }
      }
    }
    return 0;
  }

  private static String problem(Path file, IOException e) {
    if (e instanceof NoSuchFileException) {
      return file + ": no such file";
    }
    String m = e.getMessage() == null ? e.toString() : e.getMessage();
    return m.startsWith(file.toString()) ? m : file + ": " + m; // a message that names the file already
  }

  private static Module create(Arena arena, String name) {
    if (VoVNet.configNames().contains(name)) {
      return VoVNet.create(arena, name);
    }
    if (ResNet.configNames().contains(name)) {
      return ResNet.create(arena, name);
    }
    List<String> all = new ArrayList<>(VoVNet.configNames());
    all.addAll(ResNet.configNames());
    throw new IllegalArgumentException("unknown --model " + name + "; known: " + String.join(", ", all));
  }
}

package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.sekit.TestSupport;
import dev.sekit.data.ImageNetClasses;
import dev.sekit.data.ImageTransform;
import dev.sekit.io.SafeTensors;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * ImageNet top-5 of a photograph, from Java and from {@code sekit predict}, against PyTorch:
 * a timm {@code ese_vovnet19b_slim_dw} with random weights (written by
 * src/test/python/image_fixtures.py) on the same photograph, preprocessed by torchvision.
 */
class ImageClassifierTest {
  /** PyTorch's top 5 for each photograph. */
  static List<JsonObject> expected() throws IOException {
    JsonArray a = JsonParser.parseString(Files.readString(TestSupport.fixtures().resolve("images/index.json")))
        .getAsJsonObject().getAsJsonArray("predict");
    List<JsonObject> r = new ArrayList<>();
    a.forEach(e -> r.add(e.getAsJsonObject()));
    assertTrue(r.size() >= 2, "expected at least two photographs");
    return r;
  }

  static Path photo(JsonObject p) {
    return TestSupport.fixtures().resolve("images/files").resolve(p.get("image").getAsString());
  }

  static Path weights() {
    return TestSupport.fixtures().resolve("images/predict.safetensors");
  }

  @Test
  void topFiveEqualsPyTorch() throws IOException {
    // The README's example, as a user writes it.
    try (Arena arena = Arena.ofConfined()) {
      VoVNet net = VoVNet.create(arena, "ese_vovnet19b_slim_dw");
      net.loadStateDict(SafeTensors.open(arena, weights()).tensors());
      ImageClassifier classifier = ImageClassifier.imageNet(net, ImageTransform.eval(224, 0.875));
      double worst = 0;
      for (JsonObject p : expected()) {
        List<ImageClassifier.Prediction> top = classifier.classify(photo(p), 5);
        JsonArray top5 = p.getAsJsonArray("top5");
        JsonArray probs = p.getAsJsonArray("probs");
        for (int i = 0; i < 5; i++) {
          ImageClassifier.Prediction got = top.get(i);
          assertEquals(top5.get(i).getAsInt(), got.index(), p.get("image") + ", rank " + i + ": " + top);
          assertEquals(ImageNetClasses.names().get(got.index()), got.label());
          worst = Math.max(worst, Math.abs(got.probability() - probs.get(i).getAsDouble()));
        }
        System.out.println(p.get("image").getAsString() + ": " + top);
      }
      assertTrue(worst < 1e-5, "probabilities differ from PyTorch's by up to " + worst);
      System.out.println("top-5 as PyTorch's; probabilities within " + worst);
    }
  }

  @Test
  void imageNetNamesAreTorchvisions() {
    List<String> names = ImageNetClasses.names();
    assertEquals(1000, names.size());
    assertEquals("tench", names.get(0));
    assertEquals("toilet tissue", names.get(999));
  }

  /** Runs the command-line program as users do (module dev.sekit.app); its exit code and output. */
  static Object[] sekit(String... args) throws Exception {
    List<String> cmd = dev.sekit.TestSupport.sekitCliCommand(args);
    Process proc = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(proc.getInputStream().readAllBytes());
    assertTrue(proc.waitFor(120, TimeUnit.SECONDS));
    return new Object[] {proc.exitValue(), out};
  }

  @Test
  void predictCommandPrintsTheTopFive() throws Exception {
    JsonObject p = expected().get(1);
    Object[] r = sekit("predict", "--model", "ese_vovnet19b_slim_dw", "--weights", weights().toString(), "--threads",
        "2", photo(p).toString());
    String out = (String) r[1];
    assertEquals(0, r[0], out);
    List<String> lines = out.lines().toList();
    assertEquals(photo(p).toString(), lines.get(0), out);
    for (int i = 0; i < 5; i++) {
      int index = p.getAsJsonArray("top5").get(i).getAsInt();
      String line = lines.get(1 + i).trim();
      String[] parts = line.split("\\s+", 3);
      assertEquals(String.valueOf(index), parts[1], out);
      assertEquals(ImageNetClasses.names().get(index), parts[2], out);
      double pct = Double.parseDouble(parts[0].replace("%", ""));
      assertEquals(100 * p.getAsJsonArray("probs").get(i).getAsDouble(), pct, 0.006, out);
    }
    Object[] missing = sekit("predict", "--model", "ese_vovnet19b_slim_dw", "--weights", weights().toString(),
        "no-such-photo.jpg");
    assertEquals(2, missing[0], (String) missing[1]);
    assertTrue(((String) missing[1]).contains("sekit: no-such-photo.jpg: no such file"), (String) missing[1]);
  }
}

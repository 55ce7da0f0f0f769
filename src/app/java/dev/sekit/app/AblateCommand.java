package dev.sekit.app;

import dev.sekit.nn.Attention;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code sekit ablate}: attention none / SE / eSE on the same budget, several seeds each.
 * {@code --model resnet-tiny --variants none,se} is the SENet paper's comparison (ResNet vs
 * SE-ResNet) in miniature.
 */
@Command(name = "ablate", mixinStandardHelpOptions = true,
    description = "Train the same model with attention none, SE and eSE (same budget, several seeds) and tabulate test accuracy.")
final class AblateCommand implements Callable<Integer> {
  @Mixin TrainOptions options = new TrainOptions();

  @Option(names = "--variants", split = ",", description = "Attention variants to compare, comma-separated "
      + "(none, se, ese). Default: ${DEFAULT-VALUE}.")
  List<String> variants = List.of("none", "se", "ese");

  @Option(names = "--seeds", description = "Seeds per variant. Default: ${DEFAULT-VALUE}.")
  int seeds = 3;

  @Option(names = "--out", description = "Where ablation.md goes. Default: ${DEFAULT-VALUE}.")
  Path out = Path.of("runs/ablation");

  @Override
  public Integer call() throws Exception {
    options.checkModel();
    for (String v : variants) { // before any training
      if (!List.of("none", "se", "ese").contains(v)) {
        throw new IllegalArgumentException("--variants must list none, se or ese, got '" + v + "'");
      }
    }
    Files.createDirectories(out);
    StringBuilder md = new StringBuilder();
    md.append(String.format(Locale.ROOT, "Fashion-MNIST, %s, %d epoch(s)%s, batch %d, %d thread(s), seeds 0..%d%n%n",
        options.model, options.common.epochs, options.common.limitTrain == null ? "" : " on " + options.common.limitTrain + " training images",
        options.common.batch, options.common.threads, seeds - 1));
    md.append("| attention | test accuracy (mean ± std) | per seed | parameters | samples/s |\n|---|---|---|---|---|\n");
    for (String name : variants) {
      Attention a = TrainOptions.attention(name);
      List<Double> acc = new ArrayList<>();
      double sps = 0;
      long params = 0;
      for (int s = 0; s < seeds; s++) {
        Runs.Outcome o = Runs.run(options, a, s, null, false, null, null);
        acc.add(o.result().finalTestAccuracy());
        sps += o.result().history().stream().mapToDouble(e -> e.samplesPerSecond()).average().orElse(0);
        params = o.parameters();
        System.out.printf(Locale.ROOT, "%-4s seed %d: test accuracy %.2f%%%n", name, s, 100 * acc.get(acc.size() - 1));
      }
      double mean = acc.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
      double var = acc.stream().mapToDouble(v -> (v - mean) * (v - mean)).sum() / Math.max(1, acc.size() - 1);
      String perSeed = String.join(", ", acc.stream().map(v -> String.format(Locale.ROOT, "%.2f", 100 * v)).toList());
      md.append(String.format(Locale.ROOT, "| %s | %.2f%% ± %.2f | %s | %,d | %.0f |%n", name, 100 * mean,
          100 * Math.sqrt(var), perSeed, params, sps / seeds));
    }
    Files.writeString(out.resolve("ablation.md"), md);
    System.out.println();
    System.out.print(md);
    System.out.println("\nwrote " + out.resolve("ablation.md"));
    return 0;
  }
}

package dev.sekit.app;

import dev.sekit.DType;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.SqueezeExcitation;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;

/**
 * The demo: runs SE and eSE forward and backward on a batch that PyTorch also ran
 * (inputs, weights and PyTorch's results come from {@code make_fixtures.py --demo}),
 * and prints checksums and the largest difference from PyTorch.
 *
 * <p>Usage: {@code ParityDemo DIR} where DIR holds demo_se.safetensors and demo_ese.safetensors.
 */
public final class ParityDemo {
  private ParityDemo() {}

  public static void main(String[] args) throws java.io.IOException {
    if (args.length != 1) {
      System.err.println("usage: ParityDemo DIR   (DIR from make_fixtures.py --demo DIR)");
      System.exit(2);
    }
    Path dir = Path.of(args[0]);
    System.out.printf(Locale.ROOT, "sekit on libtorch %s, %d intra-op thread(s), CUDA %s%n",
        Sekit.torchVersion(), Sekit.numThreads(), Sekit.cudaAvailable() ? "available" : "not available");
    boolean ok = true;
    for (String name : new String[] {"demo_se", "demo_ese"}) {
      Path file = dir.resolve(name + ".safetensors");
      if (!Files.isRegularFile(file)) {
        System.err.println("missing " + file + ": run make_fixtures.py --demo " + dir);
        System.exit(2);
      }
      ok &= run(file);
    }
    System.out.println(ok ? "parity with PyTorch: OK" : "parity with PyTorch: FAILED");
    System.exit(ok ? 0 : 1);
  }

  private static boolean run(Path file) throws java.io.IOException {
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors f = SafeTensors.open(arena, file);
      Map<String, String> meta = f.metadata();
      int channels = Integer.parseInt(meta.get("channels"));
      Module block = meta.get("module").equals("se")
          ? SqueezeExcitation.builder(channels).rdChannels(Integer.parseInt(meta.get("rd_channels"))).build(arena)
          : EffectiveSqueezeExcitation.of(arena, channels);
      block.loadStateDict(f.tensors("param."));

      Tensor x = f.tensor("input").requiresGrad(true); // a view of the file's bytes: no copy
      long t0 = System.nanoTime();
      Tensor y = block.forward(x);
      long t1 = System.nanoTime();
      y.backward(f.tensor("grad_output"));
      long t2 = System.nanoTime();

      double dy = maxAbsDiff(f.tensor("output"), y);
      double dx = maxAbsDiff(f.tensor("grad_input"), x.grad().orElseThrow());
      double dp = 0;
      for (var p : block.namedParameters().entrySet()) {
        dp = Math.max(dp, maxAbsDiff(f.tensor("grad." + p.getKey()), p.getValue().grad().orElseThrow()));
      }
      System.out.printf(Locale.ROOT, "%-45s input %s%n", block, java.util.Arrays.toString(x.shape()));
      System.out.printf(Locale.ROOT, "  forward %.2f ms, backward %.2f ms%n", (t1 - t0) / 1e6, (t2 - t1) / 1e6);
      System.out.printf(Locale.ROOT, "  checksum sum(y) = %.6f   sum(dL/dx) = %.6f%n",
          sum(y), sum(x.grad().orElseThrow()));
      System.out.printf(Locale.ROOT, "  max |sekit - PyTorch|: output %.3e, input grad %.3e, param grads %.3e%n",
          dy, dx, dp);
      return Math.max(dy, Math.max(dx, dp)) < 1e-4;
    }
  }

  private static double sum(Tensor t) {
    double s = 0;
    for (float v : t.toFloatArray()) {
      s += v;
    }
    return s;
  }

  private static double maxAbsDiff(Tensor a, Tensor b) {
    float[] x = a.to(DType.FLOAT32).toFloatArray();
    float[] y = b.to(DType.FLOAT32).toFloatArray();
    double m = 0;
    for (int i = 0; i < x.length; i++) {
      m = Math.max(m, Math.abs((double) x[i] - y[i]));
    }
    return m;
  }
}

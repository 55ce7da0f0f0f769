package dev.sekit.bench;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.nn.Attention;
import dev.sekit.nn.Module;
import dev.sekit.nn.SmallVoVNet;
import dev.sekit.nn.VoVNet;
import dev.sekit.train.Losses;
import dev.sekit.train.Optimizer;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * Training steps per second from Java (the network benchmark of run.sh; train_net.py is the
 * PyTorch side): forward, cross-entropy with label smoothing 0.1, backward, gradient
 * clipping, SGD with Nesterov momentum, on fixed random batches, channels-last (sekit's
 * training layout). MODEL "demo" is the Fashion-MNIST network (SmallVoVNet with eSE, 1×28×28,
 * 10 classes), anything else a timm VoVNet at 224×224 with 1000 classes. Prints one JSON
 * line. Usage: TrainBench MODEL BATCH THREADS STEPS
 */
public final class TrainBench {
  private TrainBench() {}

  public static void main(String[] a) throws Exception {
    String model = a[0];
    int batch = Integer.parseInt(a[1]);
    int threads = Integer.parseInt(a[2]);
    int steps = Integer.parseInt(a[3]);
    Sekit.setNumThreads(threads);
    Sekit.manualSeed(0);
    double[] t = new double[steps];
    try (Arena arena = Arena.ofConfined()) {
      boolean demo = model.equals("demo");
      Module net = demo ? SmallVoVNet.build(arena, Attention.ESE, 1, 10) : VoVNet.create(arena, model);
      net.to(MemoryFormat.CHANNELS_LAST).train();
      Optimizer opt = Optimizer.sgd(net, 0.01).momentum(0.9).nesterov(true).weightDecay(5e-4).build(arena);
      int size = demo ? 28 : 224;
      int classes = demo ? 10 : 1000;
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, batch, demo ? 1 : 3, size, size)
          .contiguous(arena, MemoryFormat.CHANNELS_LAST);
      long[] labels = new long[batch];
      for (int i = 0; i < batch; i++) {
        labels[i] = (i * 7L) % classes;
      }
      Tensor y = Tensor.copyOf(arena, labels, batch);
      for (int i = -3; i < steps; i++) {
        long t0 = System.nanoTime();
        try (Arena s = Arena.ofConfined()) {
          Tensor loss = Losses.crossEntropy(net.forward(s, x, true), y, 0.1);
          opt.zeroGrad();
          loss.backward();
          net.clipGradNorm(5.0);
          opt.step();
        }
        if (i >= 0) {
          t[i] = (System.nanoTime() - t0) / 1e6;
        }
      }
    }
    Arrays.sort(t);
    String hwm = Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("VmHWM"))
        .findFirst().orElse("VmHWM: 0 kB").replaceAll("[^0-9]", "");
    double median = t[steps / 2];
    System.out.printf(Locale.ROOT, "{\"engine\": \"sekit_train\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, "
        + "\"median_ms\": %.3f, \"min_ms\": %.3f, \"steps_per_s\": %.3f, \"peak_rss_kb\": %s}%n",
        model, batch, threads, median, t[0], 1000 / median, hwm);
  }
}

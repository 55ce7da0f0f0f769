package dev.sekit.app;

import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.data.FashionMnist;
import dev.sekit.nn.Attention;
import dev.sekit.nn.Module;
import dev.sekit.train.Trainer;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.function.BooleanSupplier;

/** One training run: data, model, trainer. */
final class Runs {
  private Runs() {}

  record Outcome(Trainer.Result result, long parameters, double seconds) {}

  static FashionMnist.Split onDevice(Arena arena, FashionMnist.Split s, Device d) {
    if (d.isCpu()) {
      return s;
    }
    Tensor x = s.images().to(arena, s.images().dtype(), d);
    Tensor y = s.labels().to(arena, s.labels().dtype(), d);
    return new FashionMnist.Split(x, y, s.size());
  }

  static Outcome run(TrainOptions o, Attention attention, long seed, Path checkpoint, boolean resume,
      Trainer.Listener listener, BooleanSupplier stop) {
    o.checkModel();
    Sekit.setNumThreads(o.threads);
    Device device = o.device();
    try (Arena arena = Arena.ofConfined()) {
      FashionMnist.Split train = o.limitTrain == null
          ? FashionMnist.train(arena, o.data)
          : FashionMnist.load(arena, o.data, "train", o.limitTrain);
      FashionMnist.Split test = o.limitTest == null
          ? FashionMnist.test(arena, o.data)
          : FashionMnist.load(arena, o.data, "test", o.limitTest);
      train = onDevice(arena, train, device);
      test = onDevice(arena, test, device);
      Sekit.manualSeed(seed);
      Module model = o.buildModel(arena, attention);
      model.to(device, dev.sekit.DType.FLOAT32);
      Trainer trainer = new Trainer(arena, model, train, test, o.config(seed));
      if (resume) {
        if (checkpoint == null || !java.nio.file.Files.isRegularFile(checkpoint)) {
          throw new IllegalArgumentException("--resume: no checkpoint at " + checkpoint);
        }
        trainer.resume(checkpoint);
      }
      long t0 = System.nanoTime();
      Trainer.Result r = trainer.fit(checkpoint, listener, stop);
      return new Outcome(r, model.parameterCount(), (System.nanoTime() - t0) / 1e9);
    }
  }
}

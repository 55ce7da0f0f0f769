package dev.sekit.app;

import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.dist.DistributedDataParallel;
import dev.sekit.dist.ProcessGroup;
import dev.sekit.nn.Attention;
import dev.sekit.nn.Module;
import dev.sekit.train.Trainer;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.function.BooleanSupplier;

/** One training run: data, model, trainer. */
final class Runs {
  private Runs() {}

  /** {@code ddp} is null when training ran in one process. */
  record Outcome(Trainer.Result result, long parameters, double seconds, DistributedDataParallel.Stats ddp) {}

  static Outcome run(TrainOptions o, Attention attention, long seed, Path checkpoint, boolean resume,
      Trainer.Listener listener, BooleanSupplier stop) throws IOException {
    return run(o, attention, seed, checkpoint, resume, listener, stop, null);
  }

  /** As above, as one rank of {@code group} (data-parallel) when it is not null. */
  static Outcome run(TrainOptions o, Attention attention, long seed, Path checkpoint, boolean resume,
      Trainer.Listener listener, BooleanSupplier stop, ProcessGroup group) throws IOException {
    o.checkModel();
    Sekit.setNumThreads(o.common.threads);
    Device device = o.device();
    try (InMemoryDataset train = FashionMnist.load(o.data, "train", o.common.limitTrain == null ? Integer.MAX_VALUE : o.common.limitTrain);
        InMemoryDataset test = FashionMnist.load(o.data, "test", o.common.limitTest == null ? Integer.MAX_VALUE : o.common.limitTest);
        Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(seed);
      Module model = o.buildModel(arena, attention);
      model.to(device, dev.sekit.DType.FLOAT32);
      Trainer trainer = new Trainer(arena, model, train, test, o.options(seed), group);
      if (resume) {
        if (checkpoint == null || !java.nio.file.Files.isRegularFile(checkpoint)) {
          throw new IllegalArgumentException("--resume: no checkpoint at " + checkpoint);
        }
        trainer.resume(checkpoint);
      }
      long t0 = System.nanoTime();
      Trainer.Result r = trainer.fit(checkpoint, listener, stop);
      DistributedDataParallel.Stats stats = trainer.distributed().map(DistributedDataParallel::stats).orElse(null);
      return new Outcome(r, model.parameterCount(), (System.nanoTime() - t0) / 1e9, stats);
    }
  }
}

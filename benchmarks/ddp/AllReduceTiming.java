import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Tensor;
import dev.sekit.dist.ProcessGroup;
import dev.sekit.dist.ReduceOp;
import java.lang.foreign.Arena;

/**
 * One rank of an all-reduce timing (torchrun's variables in the environment): the mean time
 * of an all-reduce of {@code args[0]} float32 values (the demo network's gradients: 409,010)
 * over Gloo, after 5 warm-up calls; rank 0 prints it.
 */
public class AllReduceTiming {
  public static void main(String[] args) {
    long n = Long.parseLong(args[0]);
    int reps = args.length > 1 ? Integer.parseInt(args[1]) : 50;
    try (ProcessGroup pg = ProcessGroup.fromEnvironment(); Arena a = Arena.ofConfined()) {
      Tensor t = Tensor.randn(a, DType.FLOAT32, Device.CPU, n);
      for (int i = 0; i < 5; i++) {
        pg.allReduce(t, ReduceOp.SUM);
      }
      pg.barrier();
      long t0 = System.nanoTime();
      for (int i = 0; i < reps; i++) {
        pg.allReduce(t, ReduceOp.SUM);
      }
      double ms = (System.nanoTime() - t0) / 1e6 / reps;
      if (pg.rank() == 0) {
        System.out.printf("all-reduce of %,d float32 (%.2f MB) over %d processes: %.3f ms%n", n, n * 4 / 1e6,
            pg.worldSize(), ms);
      }
    }
  }
}

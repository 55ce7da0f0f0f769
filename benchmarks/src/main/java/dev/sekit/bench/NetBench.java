package dev.sekit.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.InferenceModule;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * One Java engine of the network benchmark (run.sh), in its own JVM (for its peak resident
 * memory): the forward of MODEL (eval, no grad, 224x224) at BATCH, REPS timed calls after 3
 * warm-up calls, on THREADS intra-op threads; prints one JSON line.
 *
 * <ul>
 *   <li>{@code sekit}: the module as created (its default layout), {@code forward(arena, x, false)}
 *   <li>{@code sekit_cl}: the module after {@code to(MemoryFormat.CHANNELS_LAST)}
 *   <li>{@code sekit_prepared}: {@code prepareForInference()}
 *   <li>{@code ort}: ONNX Runtime Java on the same weights (the ONNX export of prepare.py),
 *       all graph optimisations, THREADS intra-op threads, one inter-op thread; without
 *       spinning when OMP_WAIT_POLICY=passive (as the OpenMP engines then do not spin)
 * </ul>
 *
 * Usage: NetBench DIR MODEL ENGINE BATCH THREADS REPS
 */
public final class NetBench {
  private NetBench() {}

  public static void main(String[] a) throws Exception {
    Path dir = Path.of(a[0]);
    String model = a[1];
    String engine = a[2];
    int batch = Integer.parseInt(a[3]);
    int threads = Integer.parseInt(a[4]);
    int reps = Integer.parseInt(a[5]);
    float[] input = new float[batch * 3 * 224 * 224];
    Random r = new Random(0);
    for (int i = 0; i < input.length; i++) {
      input[i] = (float) r.nextGaussian();
    }
    double[] t = new double[reps];
    double err;
    try (Arena arena = Arena.ofConfined()) {
      float[] check;
      float[] expected;
      Runner run;
      // The file's memory is released once the weights are loaded, as ONNX Runtime does
      // with its model file.
      try (Arena file = Arena.ofConfined()) {
        SafeTensors st = SafeTensors.open(file, dir.resolve(model + ".safetensors"));
        check = st.tensor("check.input").toFloatArray();
        expected = st.tensor("check.output").toFloatArray();
        if (engine.equals("ort")) {
          run = ort(dir.resolve(model + ".onnx"), threads);
        } else {
          run = sekit(arena, st, model, engine, threads);
        }
      }
      err = relativeError(expected, run.forward(check, 1));
      for (int i = 0; i < 3; i++) {
        run.forward(input, batch);
      }
      for (int i = 0; i < reps; i++) {
        long t0 = System.nanoTime();
        run.forward(input, batch);
        t[i] = (System.nanoTime() - t0) / 1e6;
      }
    }
    Arrays.sort(t);
    String hwm = Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("VmHWM"))
        .findFirst().orElse("VmHWM: 0 kB").replaceAll("[^0-9]", "");
    StringBuilder times = new StringBuilder();
    for (double v : t) {
      times.append(times.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%.3f", v));
    }
    System.out.printf(Locale.ROOT,
        "{\"engine\": \"%s\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"median_ms\": %.3f, "
            + "\"min_ms\": %.3f, \"times_ms\": [%s], \"err\": %.3g, \"peak_rss_kb\": %s}%n",
        engine, model, batch, threads, t[reps / 2], t[0], times, err, hwm);
  }

  /** Logits of {@code n} images. */
  interface Runner {
    float[] forward(float[] images, int n) throws Exception;
  }

  static Runner sekit(Arena arena, SafeTensors st, String model, String engine, int threads) {
    Sekit.setNumThreads(threads);
    VoVNet net = VoVNet.create(arena, model);
    Map<String, Tensor> weights = new java.util.LinkedHashMap<>(st.tensors());
    weights.remove("check.input");
    weights.remove("check.output");
    net.loadStateDict(weights);
    net.eval();
    if (engine.equals("sekit_cl")) {
      net.to(MemoryFormat.CHANNELS_LAST);
    }
    InferenceModule prepared = engine.equals("sekit_prepared") ? net.prepareForInference() : null;
    return (images, n) -> {
      try (Arena call = Arena.ofConfined()) {
        var seg = call.allocate(ValueLayout.JAVA_FLOAT, images.length);
        seg.copyFrom(java.lang.foreign.MemorySegment.ofArray(images));
        Tensor x = Tensor.wrap(call, seg, DType.FLOAT32, n, 3, 224, 224);
        Tensor y = prepared != null ? prepared.forward(call, x) : net.forward(call, x, false);
        return y.toFloatArray();
      }
    };
  }

  static Runner ort(Path onnx, int threads) throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    OrtSession.SessionOptions o = new OrtSession.SessionOptions();
    o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
    o.setIntraOpNumThreads(threads);
    o.setInterOpNumThreads(1);
    o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
    // The same wait policy as the OpenMP engines: OMP_WAIT_POLICY=passive (run.sh's default
    // on a shared machine) means no spinning between parallel regions.
    if ("passive".equalsIgnoreCase(System.getenv("OMP_WAIT_POLICY"))) {
      o.addConfigEntry("session.intra_op.allow_spinning", "0");
    }
    OrtSession session = env.createSession(onnx.toString(), o);
    return (images, n) -> {
      try (OnnxTensor x = OnnxTensor.createTensor(env, FloatBuffer.wrap(images, 0, n * 3 * 224 * 224),
          new long[] {n, 3, 224, 224}); OrtSession.Result res = session.run(Map.of("input", x))) {
        float[][] out = (float[][]) res.get(0).getValue();
        float[] flat = new float[out.length * out[0].length];
        for (int i = 0; i < out.length; i++) {
          System.arraycopy(out[i], 0, flat, i * out[0].length, out[0].length);
        }
        return flat;
      }
    };
  }

  static double relativeError(float[] expected, float[] actual) {
    double d = 0;
    double m = 0;
    for (int i = 0; i < expected.length; i++) {
      d = Math.max(d, Math.abs(expected[i] - actual[i]));
      m = Math.max(m, Math.abs(expected[i]));
    }
    return d / m;
  }
}

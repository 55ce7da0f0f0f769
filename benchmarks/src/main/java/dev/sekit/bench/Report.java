package dev.sekit.bench;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;

/**
 * Turns one run of the suite (jmh.json, driver.json, eager.json in DIR) into results.md
 * (tables of times and ratios) and chart.png.   Usage: Report DIR "machine description"
 */
public final class Report {
  private Report() {}

  private static final String[] ENGINES = {"ort", "sekit", "sekit_cl", "sekit_prepared", "pytorch_eager_nchw",
      "pytorch_eager_cl", "pytorch_frozen"};
  private static final String[] NAMES = {"ONNX Runtime Java", "sekit as created", "sekit channels-last",
      "**sekit prepared**", "PyTorch eager NCHW", "PyTorch eager channels-last", "PyTorch frozen TorchScript"};

  private static List<JsonObject> lines(Path p) throws java.io.IOException {
    List<JsonObject> out = new ArrayList<>();
    if (Files.exists(p)) {
      for (String l : Files.readAllLines(p)) {
        if (l.startsWith("{")) {
          out.add(JsonParser.parseString(l).getAsJsonObject());
        }
      }
    }
    return out;
  }

  private static double median(List<Double> v) {
    if (v.isEmpty()) {
      return Double.NaN;
    }
    List<Double> s = new ArrayList<>(v);
    java.util.Collections.sort(s);
    return s.get(s.size() / 2);
  }

  /** The whole-network tables (net.jsonl, train.jsonl) and network.png. */
  static void networks(Path dir, StringBuilder md, String conditions) throws Exception {
    List<JsonObject> net = lines(dir.resolve("net.jsonl"));
    if (net.isEmpty()) {
      return;
    }
    // (model, batch) -> engine -> every timed call of every round; rounds; peak RSS; error
    Map<String, Map<String, List<Double>>> times = new LinkedHashMap<>();
    Map<String, Map<String, Double>> rss = new LinkedHashMap<>();
    Map<String, Double> err = new LinkedHashMap<>();
    for (JsonObject o : net) {
      String key = o.get("model").getAsString() + " batch " + o.get("batch").getAsInt();
      String e = o.get("engine").getAsString();
      List<Double> t = times.computeIfAbsent(key, k -> new LinkedHashMap<>()).computeIfAbsent(e, k -> new ArrayList<>());
      for (JsonElement v : o.getAsJsonArray("times_ms")) {
        t.add(v.getAsDouble());
      }
      rss.computeIfAbsent(key, k -> new LinkedHashMap<>()).merge(e, o.get("peak_rss_kb").getAsDouble() / 1024, Math::max);
      err.merge(e, o.get("err").getAsDouble(), Math::max);
    }
    md.append("\nWhole networks, forward, float32, 224×224, eval, no grad; median of every timed call over "
        + "interleaved rounds (each engine in its own process, same weights), ms, lower is better. ")
        .append(conditions).append(".\n\n| model | ");
    for (String n : NAMES) {
      md.append(n).append(" | ");
    }
    md.append("prepared vs ORT | vs eager NCHW | vs frozen TS |\n|---|");
    for (int i = 0; i < NAMES.length + 3; i++) {
      md.append("---|");
    }
    md.append('\n');
    List<String> labels = new ArrayList<>();
    List<Double> vsOrt = new ArrayList<>();
    List<Double> vsEager = new ArrayList<>();
    List<Double> vsFrozen = new ArrayList<>();
    for (var e : times.entrySet()) {
      Map<String, Double> m = new LinkedHashMap<>();
      for (String eng : ENGINES) {
        m.put(eng, median(e.getValue().getOrDefault(eng, List.of())));
      }
      md.append("| ").append(e.getKey()).append(" | ");
      for (String eng : ENGINES) {
        md.append(String.format(Locale.ROOT, "%.1f | ", m.get(eng)));
      }
      double p = m.get("sekit_prepared");
      md.append(String.format(Locale.ROOT, "**%.2f×** | **%.2f×** | **%.2f×** |%n", m.get("ort") / p,
          m.get("pytorch_eager_nchw") / p, m.get("pytorch_frozen") / p));
      labels.add(e.getKey().replace("ese_vovnet", "").replace(" batch ", ", batch "));
      vsOrt.add(m.get("ort") / p);
      vsEager.add(m.get("pytorch_eager_nchw") / p);
      vsFrozen.add(m.get("pytorch_frozen") / p);
    }
    md.append("\nPeak resident memory of each process, MiB (the Java engines include the JVM):\n\n| model | ");
    for (String n : NAMES) {
      md.append(n).append(" | ");
    }
    md.append("\n|---|");
    for (int i = 0; i < NAMES.length; i++) {
      md.append("---|");
    }
    md.append('\n');
    for (var e : rss.entrySet()) {
      md.append("| ").append(e.getKey()).append(" | ");
      for (String eng : ENGINES) {
        md.append(String.format(Locale.ROOT, "%.0f | ", e.getValue().getOrDefault(eng, Double.NaN)));
      }
      md.append('\n');
    }
    md.append("\nLargest relative error of each engine's logits against PyTorch eager on one image: ");
    List<String> errs = new ArrayList<>();
    for (int i = 0; i < ENGINES.length; i++) {
      errs.add(NAMES[i].replace("*", "") + " " + String.format(Locale.ROOT, "%.1e", err.getOrDefault(ENGINES[i], Double.NaN)));
    }
    md.append(String.join(", ", errs)).append(".\n");

    List<JsonObject> train = lines(dir.resolve("train.jsonl"));
    if (!train.isEmpty()) {
      Map<String, Map<String, List<Double>>> steps = new LinkedHashMap<>();
      for (JsonObject o : train) {
        String key = o.get("model").getAsString() + " batch " + o.get("batch").getAsInt();
        steps.computeIfAbsent(key, k -> new LinkedHashMap<>())
            .computeIfAbsent(o.get("engine").getAsString(), k -> new ArrayList<>()).add(o.get("median_ms").getAsDouble());
      }
      md.append("\nTraining steps per second (forward, cross-entropy, backward, clipping, SGD; median of the "
          + "rounds' medians), higher is better:\n\n| model | sekit (Java, channels-last) | PyTorch eager channels-last "
          + "| PyTorch eager NCHW | sekit vs eager channels-last |\n|---|---|---|---|---|\n");
      for (var e : steps.entrySet()) {
        double s = 1000 / median(e.getValue().getOrDefault("sekit_train", List.of()));
        double cl = 1000 / median(e.getValue().getOrDefault("pytorch_train_cl", List.of()));
        double nchw = 1000 / median(e.getValue().getOrDefault("pytorch_train_nchw", List.of()));
        md.append(String.format(Locale.ROOT, "| %s | %.2f | %.2f | %.2f | **%.2f×** |%n", e.getKey(), s, cl, nchw, s / cl));
      }
    }
    CategoryChart chart = new CategoryChartBuilder().width(1000).height(450)
        .title("Whole networks: speed-up of sekit prepared inference, same threads, same weights")
        .xAxisTitle("model and batch (224×224, float32)").yAxisTitle("other engine's time ÷ sekit prepared").build();
    chart.addSeries("ONNX Runtime Java", labels, vsOrt);
    chart.addSeries("PyTorch eager NCHW", labels, vsEager);
    chart.addSeries("PyTorch frozen TorchScript", labels, vsFrozen);
    BitmapEncoder.saveBitmap(chart, dir.resolve("network").toString(), BitmapEncoder.BitmapFormat.PNG);
  }

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    String machine = args.length > 1 ? args[1] : "";
    String conditions = args.length > 2 ? args[2] : "";
    JsonArray jmh = JsonParser.parseString(Files.readString(dir.resolve("jmh.json"))).getAsJsonArray();
    JsonObject driver = JsonParser.parseString(Files.readString(dir.resolve("driver.json"))).getAsJsonObject();
    JsonObject eager = JsonParser.parseString(Files.readString(dir.resolve("eager.json"))).getAsJsonObject();

    Map<String, Double> fused = new LinkedHashMap<>();
    Map<String, Double> composition = new LinkedHashMap<>();
    Map<String, Double> other = new LinkedHashMap<>();
    for (JsonElement e : jmh) {
      JsonObject o = e.getAsJsonObject();
      String bench = o.get("benchmark").getAsString();
      String method = bench.substring(bench.lastIndexOf('.') + 1);
      String cls = bench.substring(0, bench.lastIndexOf('.'));
      cls = cls.substring(cls.lastIndexOf('.') + 1);
      JsonObject p = o.has("params") ? o.getAsJsonObject("params") : new JsonObject();
      double score = o.getAsJsonObject("primaryMetric").get("score").getAsDouble();
      switch (cls) {
        case "BlockBench", "OsaBench" -> {
          String key = p.get("block").getAsString() + "_" + (method.equals("forward") ? "fwd" : "fwdbwd") + "_"
              + p.get("shape").getAsString().replace(",", "x");
          (p.get("impl").getAsString().equals("fused") ? fused : composition).put(key, score);
        }
        case "VoVNetBench" -> other.put("vovnet_fwd_b" + p.get("batch").getAsString(), score);
        case "DowncallBench" -> other.put("downcall_" + method, score);
        case "CopyBench" -> other.put(method + "_" + p.get("bytes").getAsString(), score);
        default -> { }
      }
    }
    double gbps = driver.get("copy_gbps").getAsDouble();
    StringBuilder md = new StringBuilder();
    md.append("Machine: ").append(machine).append(String.format(Locale.ROOT,
        "; copy bandwidth %.1f GB/s (bytes read + written, memcpy of 256 MiB).%n%n", gbps));
    md.append("Blocks, float32, times in ms (mean), lower is better. *floor* = bytes that must move ÷ copy "
        + "bandwidth: 3·|X| forward, 6·|X| forward+backward (SE/eSE only).\n\n");
    md.append("| block | sekit fused (Java) | sekit composition (Java) | C++ driver (fused) | PyTorch eager "
        + "| eager ÷ sekit | sekit ÷ C++ | floor | sekit ÷ floor |\n|---|---|---|---|---|---|---|---|---|\n");
    List<String> keys = new ArrayList<>(fused.keySet());
    List<Double> speedFwd = new ArrayList<>();
    List<Double> speedBwd = new ArrayList<>();
    List<String> labels = new ArrayList<>();
    for (String k : keys) {
      double s = fused.get(k);
      double comp = composition.getOrDefault(k, Double.NaN);
      double d = driver.has(k) ? driver.get(k).getAsDouble() : Double.NaN;
      double ea = eager.has(k) ? eager.get(k).getAsDouble() : Double.NaN;
      String[] parts = k.split("_");
      String floor = "";
      String ratio = "";
      if (!parts[0].equals("osa")) {
        long numel = 1;
        for (String t : parts[2].split("x")) {
          numel *= Long.parseLong(t);
        }
        double bytes = numel * 4.0 * (parts[1].equals("fwd") ? 3 : 6);
        double fl = bytes / (gbps * 1e9) * 1e3;
        floor = String.format(Locale.ROOT, "%.3f", fl);
        ratio = String.format(Locale.ROOT, "%.2f", s / fl);
      }
      md.append(String.format(Locale.ROOT, "| %s | %.3f | %.3f | %.3f | %.3f | **%.2f×** | %.2f | %s | %s |%n",
          k, s, comp, d, ea, ea / s, s / d, floor, ratio));
      if (parts[1].equals("fwd")) {
        labels.add(parts[0] + " " + parts[2]);
        speedFwd.add(ea / s);
        speedBwd.add(eager.has(k.replace("_fwd_", "_fwdbwd_")) && fused.containsKey(k.replace("_fwd_", "_fwdbwd_"))
            ? eager.get(k.replace("_fwd_", "_fwdbwd_")).getAsDouble() / fused.get(k.replace("_fwd_", "_fwdbwd_"))
            : Double.NaN);
      }
    }
    md.append("\nese_vovnet19b_dw forward, 224×224, eval, ms:\n\n| batch | sekit (Java) | C++ driver | PyTorch eager | eager ÷ sekit |\n|---|---|---|---|---|\n");
    for (String b : new String[] {"1", "8"}) {
      String k = "vovnet_fwd_b" + b;
      double s = other.getOrDefault(k, Double.NaN);
      double ea = eager.has(k) ? eager.get(k).getAsDouble() : Double.NaN;
      md.append(String.format(Locale.ROOT, "| %s | %.2f | %.2f | %.2f | %.2f× |%n", b, s,
          driver.has(k) ? driver.get(k).getAsDouble() : Double.NaN, ea, ea / s));
    }
    md.append(String.format(Locale.ROOT, "%nOne empty call (ns): FFM through the jextract binding %.1f, FFM critical %.1f, "
        + "JNI %.1f, plain Java method %.1f, C++ direct %.1f.%n",
        other.getOrDefault("downcall_ffmGenerated", Double.NaN), other.getOrDefault("downcall_ffmCritical", Double.NaN),
        other.getOrDefault("downcall_jni", Double.NaN), other.getOrDefault("downcall_javaMethod", Double.NaN),
        driver.get("noop_ns").getAsDouble()));
    md.append("\nHanding data to native code (µs): wrap an off-heap segment (no copy) vs copy a float[] in.\n\n"
        + "| bytes | wrap | copy | copy ÷ wrap |\n|---|---|---|---|\n");
    for (String b : new String[] {"1024", "1048576", "104857600"}) {
      double w = other.getOrDefault("wrapSegment_" + b, Double.NaN);
      double c = other.getOrDefault("copyArray_" + b, Double.NaN);
      md.append(String.format(Locale.ROOT, "| %s | %.2f | %.2f | %.0f× |%n", b, w, c, c / w));
    }
    networks(dir, md, conditions);
    Files.writeString(dir.resolve("results.md"), md);

    CategoryChart chart = new CategoryChartBuilder().width(1000).height(450)
        .title("Speed-up of sekit (fused) over PyTorch eager, same libtorch, same threads")
        .xAxisTitle("block and shape (N x C x H x W)").yAxisTitle("eager time ÷ sekit time").build();
    chart.addSeries("forward", labels, speedFwd);
    chart.addSeries("forward + backward", labels, speedBwd);
    chart.getStyler().setXAxisLabelRotation(30);
    BitmapEncoder.saveBitmap(chart, dir.resolve("chart").toString(), BitmapEncoder.BitmapFormat.PNG);
    System.out.print(md);
  }
}

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

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    String machine = args.length > 1 ? args[1] : "";
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

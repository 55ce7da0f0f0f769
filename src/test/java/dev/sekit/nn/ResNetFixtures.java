package dev.sekit.nn;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.sekit.DType;
import dev.sekit.MemoryFormat;
import dev.sekit.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * What the ResNet tests share with src/test/python/resnet_fixtures.py: the configuration and
 * attention records of the fixtures' metadata, and the rule that generates the weights of the
 * whole-network cases (too large to store), repeated here exactly.
 */
final class ResNetFixtures {
  private ResNetFixtures() {}

  static ResidualBlock.Kind kind(String s) {
    return switch (s) {
      case "basic" -> ResidualBlock.Kind.BASIC;
      case "bottleneck" -> ResidualBlock.Kind.BOTTLENECK;
      case "legacy_bottleneck" -> ResidualBlock.Kind.LEGACY_BOTTLENECK;
      case "preact" -> ResidualBlock.Kind.PRE_ACTIVATION;
      default -> throw new AssertionError("block " + s);
    };
  }

  static ResidualBlock.Shortcut shortcut(String s) {
    return switch (s) {
      case "none" -> ResidualBlock.Shortcut.IDENTITY;
      case "conv" -> ResidualBlock.Shortcut.CONV;
      case "avg" -> ResidualBlock.Shortcut.AVG_POOL_CONV;
      default -> throw new AssertionError("shortcut " + s);
    };
  }

  static ResNet.Stem stem(String s) {
    return switch (s) {
      case "7x7" -> ResNet.Stem.CONV7X7;
      case "deep" -> ResNet.Stem.DEEP;
      case "legacy" -> ResNet.Stem.LEGACY;
      case "small" -> ResNet.Stem.SMALL;
      default -> throw new AssertionError("stem " + s);
    };
  }

  static AttentionConfig attention(JsonObject a) {
    AttentionConfig base = switch (a.get("kind").getAsString()) {
      case "none" -> AttentionConfig.none();
      case "ese" -> AttentionConfig.ese();
      case "se" -> AttentionConfig.se();
      default -> throw new AssertionError("attention " + a);
    };
    Activation gate = a.get("gate").getAsString().equals("hard_sigmoid") ? Activation.HARD_SIGMOID : Activation.SIGMOID;
    AttentionConfig c = base.withRdRatio(a.get("rd_ratio").getAsDouble(), a.get("rd_divisor").getAsInt())
        .withBias(a.get("bias").getAsBoolean()).withGate(gate);
    if (a.get("rd_channels").getAsInt() > 0) {
      c = c.withRdChannels(a.get("rd_channels").getAsInt());
    }
    if (a.get("reduction").getAsInt() > 0) {
      c = c.withReduction(a.get("reduction").getAsInt());
    }
    return c;
  }

  static AttentionConfig attention(String json) {
    return attention(JsonParser.parseString(json).getAsJsonObject());
  }

  private static int[] ints(JsonArray a) {
    int[] r = new int[a.size()];
    for (int i = 0; i < r.length; i++) {
      r[i] = a.get(i).getAsInt();
    }
    return r;
  }

  /** The architecture of resnet_ref's configuration dict. */
  static ResNet.Config config(JsonObject c) {
    return new ResNet.Config(kind(c.get("block").getAsString()), ints(c.getAsJsonArray("layers")),
        ints(c.getAsJsonArray("channels")), c.get("cardinality").getAsInt(), c.get("base_width").getAsInt(),
        stem(c.get("stem").getAsString()), c.get("stem_width").getAsInt(), c.get("avg_down").getAsBoolean(),
        attention(c.getAsJsonObject("attn")), c.get("drop_rate").getAsDouble());
  }

  // ---------------------------------------------------------------- generated weights

  private static long hash32(long i, long salt) {
    final long m32 = 0xFFFFFFFFL;
    long x = (i * 2654435761L + salt) & m32;
    x ^= x >>> 16;
    x = (x * 0x45D9F3BL) & m32;
    x ^= x >>> 16;
    x = (x * 0x45D9F3BL) & m32;
    return x ^ (x >>> 16);
  }

  /**
   * resnet_fixtures.generated_value's rule for entry {@code key} of {@code shape}: element i
   * is {@code offset + scale * u(i)} (offset 0 or 1; with offset 0 this is the single
   * multiply Python does).
   */
  static double[] rule(String key, long[] shape) {
    String leaf = key.substring(key.lastIndexOf('.') + 1);
    if (leaf.equals("running_mean") || leaf.equals("bias")) {
      return new double[] {0.0, 0.2};
    }
    if (leaf.equals("running_var") || (leaf.equals("weight") && shape.length == 1)) {
      return new double[] {1.0, 0.5};
    }
    if (leaf.equals("weight")) {
      long n = 1;
      for (long s : shape) {
        n *= s;
      }
      return new double[] {0.0, Math.sqrt(24.0 / (n / shape[0]))};
    }
    throw new AssertionError("no rule for " + key);
  }

  static double u(long i, long salt) {
    return hash32(i, salt) / 4294967296.0 - 0.5;
  }

  static long salt(String key) {
    CRC32 crc = new CRC32();
    crc.update(key.getBytes(StandardCharsets.UTF_8));
    return crc.getValue();
  }

  /** Writes the generated values into every entry of {@code m}'s state dict (CPU, NCHW). */
  static void loadGenerated(Module m) {
    for (Map.Entry<String, Tensor> e : m.stateDict().entrySet()) {
      Tensor target = e.getValue();
      // Convolution weights are created channels-last; the rule numbers elements in NCHW order,
      // so fill an NCHW copy and copy it back into whatever layout the parameter has.
      try (Arena scratch = Arena.ofConfined()) {
        Tensor t = target.isContiguous() ? target : target.contiguous(scratch, MemoryFormat.CONTIGUOUS);
        fill(e.getKey(), t);
        if (t != target) {
          target.copyFrom(t);
        }
      }
    }
  }

  private static void fill(String key, Tensor t) {
    MemorySegment s = t.data();
    long n = t.numel();
    if (key.endsWith("num_batches_tracked")) {
      s.set(JAVA_LONG, 0, 3L);
      return;
    }
    long salt = salt(key);
    double[] r = rule(key, t.shape());
    double offset = r[0];
    double scale = r[1];
    if (t.dtype() == DType.FLOAT32) {
      for (long i = 0; i < n; i++) {
        s.setAtIndex(JAVA_FLOAT, i, (float) (offset + scale * u(i, salt)));
      }
    } else if (t.dtype() == DType.FLOAT64) {
      for (long i = 0; i < n; i++) {
        s.setAtIndex(JAVA_DOUBLE, i, offset + scale * u(i, salt));
      }
    } else {
      throw new AssertionError(key + " has dtype " + t.dtype());
    }
  }

  /** The values of {@code t} (float32/float64) at resnet_fixtures' sample indices, as float64. */
  static Tensor sample(Arena arena, Tensor t, int samples) {
    try (Arena scratch = Arena.ofConfined()) {
      Tensor c = t.contiguous(scratch, MemoryFormat.CONTIGUOUS);
      MemorySegment s = c.data();
      long n = c.numel();
      int k = (int) Math.min(n, samples);
      double[] v = new double[k];
      for (int j = 0; j < k; j++) {
        long idx = j * n / k;
        v[j] = switch (c.dtype()) {
          case FLOAT32 -> s.getAtIndex(JAVA_FLOAT, idx);
          case FLOAT64 -> s.getAtIndex(JAVA_DOUBLE, idx);
          case INT64 -> s.getAtIndex(JAVA_LONG, idx);
          default -> throw new AssertionError(c.dtype());
        };
      }
      return Tensor.copyOf(arena, v, k);
    }
  }
}

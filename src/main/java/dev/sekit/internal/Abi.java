package dev.sekit.internal;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.SekitException;
import dev.sekit.internal.ffi.sekit_h;
import dev.sekit.nn.Activation;
import dev.sekit.nn.Attention;
import dev.sekit.nn.ResNet;
import dev.sekit.nn.ResidualBlock;

/**
 * The C ABI's codes for sekit's Java types, taken from the header's constants (through the
 * generated bindings), never re-typed.
 */
public final class Abi {
  private Abi() {}

  static int code(DType d) {
    return switch (d) {
      case FLOAT32 -> sekit_h.SK_FLOAT32();
      case FLOAT64 -> sekit_h.SK_FLOAT64();
      case FLOAT16 -> sekit_h.SK_FLOAT16();
      case BFLOAT16 -> sekit_h.SK_BFLOAT16();
      case INT64 -> sekit_h.SK_INT64();
    };
  }

  static DType dtype(int code) {
    for (DType d : DType.values()) {
      if (code(d) == code) {
        return d;
      }
    }
    throw new SekitException(SekitException.Code.INTERNAL, "libsekit reported unknown dtype code " + code);
  }

  static int deviceType(Device d) {
    return d.isCuda() ? sekit_h.SK_DEVICE_CUDA() : sekit_h.SK_DEVICE_CPU();
  }

  static Device device(int type, int index) {
    return type == sekit_h.SK_DEVICE_CUDA() ? Device.cuda(index) : Device.CPU;
  }

  static int code(MemoryFormat f) {
    return switch (f) {
      case CONTIGUOUS -> sekit_h.SK_FORMAT_CONTIGUOUS();
      case CHANNELS_LAST -> sekit_h.SK_FORMAT_CHANNELS_LAST();
    };
  }

  static int code(Activation a) {
    return switch (a) {
      case IDENTITY -> sekit_h.SK_ACT_IDENTITY();
      case RELU -> sekit_h.SK_ACT_RELU();
      case SIGMOID -> sekit_h.SK_ACT_SIGMOID();
      case HARD_SIGMOID -> sekit_h.SK_ACT_HARD_SIGMOID();
      case SILU -> sekit_h.SK_ACT_SILU();
      case GELU -> sekit_h.SK_ACT_GELU();
      case HARD_SWISH -> sekit_h.SK_ACT_HARD_SWISH();
      case TANH -> sekit_h.SK_ACT_TANH();
    };
  }

  static int code(Attention a) {
    return switch (a) {
      case NONE -> sekit_h.SK_ATTN_NONE();
      case ESE -> sekit_h.SK_ATTN_ESE();
      case SE -> sekit_h.SK_ATTN_SE();
    };
  }

  static int code(ResidualBlock.Kind k) {
    return switch (k) {
      case BASIC -> sekit_h.SK_BLOCK_BASIC();
      case BOTTLENECK -> sekit_h.SK_BLOCK_BOTTLENECK();
      case LEGACY_BOTTLENECK -> sekit_h.SK_BLOCK_LEGACY_BOTTLENECK();
      case PRE_ACTIVATION -> sekit_h.SK_BLOCK_PREACT();
    };
  }

  static int code(ResidualBlock.Shortcut s) {
    return switch (s) {
      case IDENTITY -> sekit_h.SK_SHORTCUT_IDENTITY();
      case CONV -> sekit_h.SK_SHORTCUT_CONV();
      case AVG_POOL_CONV -> sekit_h.SK_SHORTCUT_AVG_CONV();
    };
  }

  static int code(ResNet.Stem s) {
    return switch (s) {
      case CONV7X7 -> sekit_h.SK_STEM_CONV7X7();
      case DEEP -> sekit_h.SK_STEM_DEEP();
      case LEGACY -> sekit_h.SK_STEM_LEGACY();
      case SMALL -> sekit_h.SK_STEM_SMALL();
    };
  }

  static SekitException.Code errorCode(int code) {
    if (code == sekit_h.SK_ERR_INVALID_ARGUMENT()) {
      return SekitException.Code.INVALID_ARGUMENT;
    }
    if (code == sekit_h.SK_ERR_OUT_OF_MEMORY()) {
      return SekitException.Code.OUT_OF_MEMORY;
    }
    if (code == sekit_h.SK_ERR_DEVICE()) {
      return SekitException.Code.DEVICE;
    }
    if (code == sekit_h.SK_ERR_DISTRIBUTED()) {
      return SekitException.Code.DISTRIBUTED;
    }
    return SekitException.Code.INTERNAL;
  }

  static int bool(boolean b) {
    return b ? 1 : 0;
  }
}

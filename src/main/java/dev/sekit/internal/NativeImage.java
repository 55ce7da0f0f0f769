package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.MemorySegment;

/** Image decoding in the native library (libjpeg-turbo). Segments are off-heap. */
public final class NativeImage {
  private NativeImage() {}

  /** Width and height of the JPEG file in {@code data}. */
  public static int[] jpegSize(MemorySegment data) {
    NativeLoader.ensureLoaded();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment w = f.oneInt();
      MemorySegment h = f.oneInt();
      Calls.check(sekit_h.sk_jpeg_info(data, data.byteSize(), w, h));
      return new int[] {w.get(JAVA_INT, 0), h.get(JAVA_INT, 0)};
    }
  }

  /** Decodes the JPEG file in {@code data} into {@code out}: RGB, height x width x 3 bytes. */
  public static void jpegDecodeRgb(MemorySegment data, MemorySegment out) {
    NativeLoader.ensureLoaded();
    NativeTensor.requireWritable(out, "out");
    Calls.check(sekit_h.sk_jpeg_decode_rgb(data, data.byteSize(), out, out.byteSize()));
  }
}

package dev.sekit.data;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * PIL's resampling of 8-bit images with its bicubic filter (a = -0.5), restated so that the
 * result is the same bit for bit: weights computed in double precision exactly as PIL
 * orders the operations, normalised, rounded to 22-bit fixed point; a horizontal pass
 * (only over the rows the vertical pass reads) into an 8-bit image, then a vertical pass;
 * a pass is skipped when its size does not change.
 */
final class PillowResize {
  private PillowResize() {}

  private static final int PRECISION_BITS = 32 - 8 - 2;
  private static final double SUPPORT = 2.0;

  static Image bicubic(Arena arena, Image in, int outW, int outH) {
    if (outW < 1 || outH < 1) {
      throw new IllegalArgumentException("the size to resize to must be at least 1x1, got " + outW + "x" + outH);
    }
    int inW = in.width();
    int inH = in.height();
    if (outW == inW && outH == inH) {
      return in.copy(arena);
    }
    checkSize(inW, inH, outW, outH);
    boolean horizontal = outW != inW;
    boolean vertical = outH != inH;
    Coefficients cv = coefficients(inH, outH);
    int yFirst = cv.bounds[0];
    int yLast = cv.bounds[2 * (outH - 1)] + cv.bounds[2 * (outH - 1) + 1];
    byte[] src;
    int rowOffset;
    if (horizontal) {
      int srcRows = yLast - yFirst;
      byte[] rows = new byte[srcRows * inW * 3];
      MemorySegment.copy(in.pixels(), JAVA_BYTE, (long) yFirst * inW * 3, rows, 0, rows.length);
      src = horizontalPass(rows, inW, srcRows, outW, coefficients(inW, outW));
      rowOffset = yFirst;
    } else {
      src = in.toByteArray();
      rowOffset = 0;
    }
    byte[] out = vertical ? verticalPass(src, outW, outH, cv, rowOffset) : src;
    Image result = Image.allocate(arena, outW, outH);
    MemorySegment.copy(out, 0, result.pixels(), JAVA_BYTE, 0, 3 * outW * outH);
    return result;
  }

  /** The largest Java array: the passes work in heap byte arrays. */
  private static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

  /**
   * Refuses a resize whose image or intermediate rows would not fit a Java array (the
   * source, the horizontal pass's rows, the result, the filter weights), before allocating.
   */
  static void checkSize(int inW, int inH, int outW, int outH) {
    long biggest = Math.max(Math.max(3L * inW * inH, 3L * outW * outH), 3L * inH * outW);
    biggest = Math.max(biggest, Math.max(weights(inW, outW), weights(inH, outH)));
    if (biggest > MAX_ARRAY) {
      throw new IllegalArgumentException("cannot resize a " + inW + "x" + inH + " image to " + outW + "x" + outH
          + ": it needs an array of " + biggest + " bytes, more than the " + MAX_ARRAY
          + " sekit resizes in; use a smaller size");
    }
  }

  /** The number of filter weights of a pass from {@code inSize} to {@code outSize}. */
  private static long weights(int inSize, int outSize) {
    double scale = Math.max(1.0, (double) inSize / outSize);
    return ((long) Math.ceil(2.0 * scale) * 2 + 1) * outSize;
  }

  /** Per output position: the first input index, the count, and ksize fixed-point weights. */
  record Coefficients(int ksize, int[] bounds, int[] weights) {}

  static Coefficients coefficients(int inSize, int outSize) {
    double scale = (double) inSize / outSize;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = SUPPORT * filterscale;
    int ksize = (int) Math.ceil(support) * 2 + 1;
    int[] bounds = new int[2 * outSize];
    int[] weights = new int[outSize * ksize];
    double[] k = new double[ksize];
    for (int xx = 0; xx < outSize; xx++) {
      double center = 0.0 + (xx + 0.5) * scale;
      double ww = 0.0;
      double ss = 1.0 / filterscale;
      int xmin = (int) (center - support + 0.5);
      if (xmin < 0) {
        xmin = 0;
      }
      int xmax = (int) (center + support + 0.5);
      if (xmax > inSize) {
        xmax = inSize;
      }
      xmax -= xmin;
      for (int x = 0; x < xmax; x++) {
        double w = filter((x + xmin - center + 0.5) * ss);
        k[x] = w;
        ww += w;
      }
      for (int x = 0; x < xmax; x++) {
        if (ww != 0.0) {
          k[x] /= ww;
        }
      }
      for (int x = 0; x < xmax; x++) {
        weights[xx * ksize + x] = k[x] < 0
            ? (int) (-0.5 + k[x] * (1 << PRECISION_BITS))
            : (int) (0.5 + k[x] * (1 << PRECISION_BITS));
      }
      bounds[2 * xx] = xmin;
      bounds[2 * xx + 1] = xmax;
    }
    return new Coefficients(ksize, bounds, weights);
  }

  /** The bicubic convolution kernel with a = -0.5, in PIL's order of operations. */
  private static double filter(double x) {
    final double a = -0.5;
    if (x < 0.0) {
      x = -x;
    }
    if (x < 1.0) {
      return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    }
    if (x < 2.0) {
      return (((x - 5) * x + 8) * x - 4) * a;
    }
    return 0.0;
  }

  private static int clip8(int ss) {
    int v = ss >> PRECISION_BITS;
    return v < 0 ? 0 : (v > 255 ? 255 : v);
  }

  private static byte[] horizontalPass(byte[] src, int inW, int rows, int outW, Coefficients c) {
    byte[] out = new byte[rows * outW * 3];
    int ksize = c.ksize;
    int[] kk = c.weights;
    int half = 1 << (PRECISION_BITS - 1);
    for (int y = 0; y < rows; y++) {
      int rowIn = y * inW * 3;
      int rowOut = y * outW * 3;
      for (int xx = 0; xx < outW; xx++) {
        int xmin = c.bounds[2 * xx];
        int xmax = c.bounds[2 * xx + 1];
        int kOff = xx * ksize;
        int ss0 = half;
        int ss1 = half;
        int ss2 = half;
        int p = rowIn + xmin * 3;
        for (int x = 0; x < xmax; x++, p += 3) {
          int w = kk[kOff + x];
          ss0 += (src[p] & 0xff) * w;
          ss1 += (src[p + 1] & 0xff) * w;
          ss2 += (src[p + 2] & 0xff) * w;
        }
        out[rowOut + 3 * xx] = (byte) clip8(ss0);
        out[rowOut + 3 * xx + 1] = (byte) clip8(ss1);
        out[rowOut + 3 * xx + 2] = (byte) clip8(ss2);
      }
    }
    return out;
  }

  private static byte[] verticalPass(byte[] src, int w, int outH, Coefficients c, int rowOffset) {
    int stride = w * 3;
    byte[] out = new byte[outH * stride];
    int ksize = c.ksize;
    int[] kk = c.weights;
    int half = 1 << (PRECISION_BITS - 1);
    int[] acc = new int[stride];
    for (int yy = 0; yy < outH; yy++) {
      int ymin = c.bounds[2 * yy] - rowOffset;
      int ymax = c.bounds[2 * yy + 1];
      int kOff = yy * ksize;
      java.util.Arrays.fill(acc, half);
      // Row by row over the filter's support: the same integer sums as PIL's per-pixel loop
      // (integer addition is exact), in an order that reads memory sequentially.
      for (int y = 0; y < ymax; y++) {
        int wgt = kk[kOff + y];
        int row = (ymin + y) * stride;
        for (int i = 0; i < stride; i++) {
          acc[i] += (src[row + i] & 0xff) * wgt;
        }
      }
      int o = yy * stride;
      for (int i = 0; i < stride; i++) {
        out[o + i] = (byte) clip8(acc[i]);
      }
    }
    return out;
  }
}

package dev.sekit;

/** How a 4-d tensor [N, C, H, W] is laid out in memory. */
public enum MemoryFormat {
  /** NCHW row-major (PyTorch's default). */
  CONTIGUOUS(0),
  /** NHWC in memory, still indexed [N, C, H, W]: faster convolutions on many CPUs and GPUs. */
  CHANNELS_LAST(1);

  final int code;

  MemoryFormat(int code) {
    this.code = code;
  }

  /** The code of this format in the C ABI. */
  public int code() {
    return code;
  }
}

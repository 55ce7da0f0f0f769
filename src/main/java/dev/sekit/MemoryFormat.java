package dev.sekit;

/** How a 4-d tensor [N, C, H, W] is laid out in memory. */
public enum MemoryFormat {
  /** NCHW row-major (PyTorch's default). */
  CONTIGUOUS,
  /** NHWC in memory, still indexed [N, C, H, W]: faster convolutions on many CPUs and GPUs. */
  CHANNELS_LAST
}

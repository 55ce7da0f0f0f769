package dev.sekit.nn;

/** Activation functions and gates the blocks can use. */
public enum Activation {
  IDENTITY,
  RELU,
  SIGMOID,
  /** relu6(x + 3) / 6, PyTorch's {@code hardsigmoid}; eSE's default gate. */
  HARD_SIGMOID,
  SILU,
  GELU,
  HARD_SWISH,
  TANH
}

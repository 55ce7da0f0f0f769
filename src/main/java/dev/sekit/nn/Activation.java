package dev.sekit.nn;

/** Activation functions and gates the blocks can use (codes of the C ABI). */
public enum Activation {
  IDENTITY(0),
  RELU(1),
  SIGMOID(2),
  /** relu6(x + 3) / 6, PyTorch's {@code hardsigmoid}; eSE's default gate. */
  HARD_SIGMOID(3),
  SILU(4),
  GELU(5),
  HARD_SWISH(6),
  TANH(7);

  final int code;

  Activation(int code) {
    this.code = code;
  }
}

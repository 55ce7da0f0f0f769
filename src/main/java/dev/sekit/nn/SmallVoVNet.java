package dev.sekit.nn;

import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * A VoVNet sized for 28×28 single-channel images (Fashion-MNIST): the "ese-vovnet-tiny"
 * of the training demo. Built from sekit's blocks as a {@link Sequential}:
 *
 * <pre>
 *   0 ConvNormAct(in, 24, 3, stride 1)      28×28
 *   1 ConvNormAct(24, 32, 3, stride 2)      14×14
 *   2 OsaBlock(32 → 3×32 → 64) + attention  14×14
 *   3 MaxPool2d(3, 2, ceil)                  7×7
 *   4 OsaBlock(64 → 3×48 → 128) + attention  7×7
 *   5 MaxPool2d(3, 2, ceil)                  3×3
 *   6 OsaBlock(128 → 3×64 → 192) + attention 3×3
 *   7 ClassifierHead(192 → classes)
 * </pre>
 *
 * With eSE: 420,186 parameters for 10 classes. Convolutions are initialised as timm
 * initialises VoVNets only when built through {@link VoVNet}; here each block keeps
 * PyTorch's default initialisation.
 */
public final class SmallVoVNet {
  private SmallVoVNet() {}

  /** The network with {@code attention} in every OSA block. */
  public static Sequential build(Arena arena, Attention attention, int inChannels, int classes) {
    Objects.requireNonNull(attention, "attention");
    return Sequential.of(arena,
        ConvNormAct.of(arena, inChannels, 24, 3, 1),
        ConvNormAct.of(arena, 24, 32, 3, 2),
        OsaBlock.builder(32, 32, 64, 3).attention(attention).build(arena),
        MaxPool2d.of(arena, 3, 2, true),
        OsaBlock.builder(64, 48, 128, 3).attention(attention).build(arena),
        MaxPool2d.of(arena, 3, 2, true),
        OsaBlock.builder(128, 64, 192, 3).attention(attention).build(arena),
        ClassifierHead.of(arena, 192, classes, 0.0));
  }
}

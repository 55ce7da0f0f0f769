package dev.sekit.nn;

/** Channel attention placed inside OSA blocks (and, through {@link AttentionConfig}, residual blocks). */
public enum Attention {
  /** No attention (VoVNet V1). */
  NONE,
  /** Effective SE: one C→C FC, hard-sigmoid gate (VoVNet V2, timm 'ese'). */
  ESE,
  /** Squeeze-and-Excitation with timm's defaults: R = C/16 rounded to 8, ReLU, sigmoid (timm 'se'). */
  SE
}

package dev.sekit.bench;

import org.openjdk.jmh.annotations.Param;

/**
 * OSA blocks (C → 3 × C/2 → C, residual, eSE) at batch 1 and the stage widths of
 * VoVNet-39/57 at 224 px, fused eSE vs the composition.
 */
public class OsaBench extends BlockBenchBase {
  @Param({"osa"})
  public String block;

  @Param({"1,256,56,56", "1,512,28,28", "1,768,14,14", "1,1024,7,7"})
  public String shape;

  @Param({"fused", "composition"})
  public String impl;

  @Override
  protected String block() {
    return block;
  }

  @Override
  protected String shape() {
    return shape;
  }

  @Override
  protected String impl() {
    return impl;
  }
}

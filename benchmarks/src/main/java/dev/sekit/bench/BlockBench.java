package dev.sekit.bench;

import org.openjdk.jmh.annotations.Param;

/**
 * SE and eSE blocks, forward (no graph) and forward+backward, fused kernels vs the libtorch
 * composition, at the shapes of spec.md. Shapes are N,C,H,W.
 */
public class BlockBench extends BlockBenchBase {
  @Param({"se", "ese"})
  public String block;

  @Param({"32,256,56,56", "8,512,28,28", "1,1024,7,7", "1,64,7,7"})
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

package dev.sekit.dist;

/** How {@link ProcessGroup#allReduce} combines the ranks' values. */
public enum ReduceOp {
  /** The sum over ranks. */
  SUM,
  /** The sum divided by the world size (floating tensors). */
  AVG,
  /** The smallest value, element by element. */
  MIN,
  /** The largest value, element by element. */
  MAX
}

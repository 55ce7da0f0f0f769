package dev.sekit.train;

/**
 * Learning rate with linear warm-up then cosine decay:
 * {@code lr(s) = base · (s + 1) / warmup} for s &lt; warmup, then
 * {@code min + (base − min) · (1 + cos(π · (s − warmup) / (total − warmup))) / 2}.
 *
 * @param baseLr peak learning rate
 * @param minLr final learning rate
 * @param warmupSteps steps of linear warm-up (0 for none)
 * @param totalSteps all steps of the run
 */
public record CosineSchedule(double baseLr, double minLr, long warmupSteps, long totalSteps) {
  public CosineSchedule {
    if (!(baseLr > 0) || !(minLr >= 0) || minLr > baseLr) {
      throw new IllegalArgumentException("need baseLr > 0 and 0 <= minLr <= baseLr, got " + baseLr + ", " + minLr);
    }
    if (warmupSteps < 0 || totalSteps <= warmupSteps) {
      throw new IllegalArgumentException("need 0 <= warmupSteps < totalSteps, got " + warmupSteps + ", " + totalSteps);
    }
  }

  /** The learning rate for step {@code step} (0-based; steps past the end keep the final rate). */
  public double at(long step) {
    if (step < 0) {
      throw new IllegalArgumentException("step must be >= 0, got " + step);
    }
    if (step < warmupSteps) {
      return baseLr * (step + 1) / warmupSteps;
    }
    double t = Math.min(1.0, (double) (step - warmupSteps) / (totalSteps - warmupSteps));
    return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
  }
}

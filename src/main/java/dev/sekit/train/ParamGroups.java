package dev.sekit.train;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Objects;

/**
 * Which parameters an optimizer updates and at what rate: torch.optim's {@code param_groups},
 * chosen by parameter name. A parameter is <em>frozen</em> when it is under one of
 * {@link #frozen()}: it gets no gradient ({@code requires_grad} off, as
 * {@code p.requires_grad_(False)}), the optimizer holds no state for it and never changes it.
 * Freezing belongs to the optimizer built with these groups, as with torch.optim: the next
 * optimizer built over the same module whose groups do not freeze a parameter these froze
 * turns its gradient back on (a parameter frozen by hand with
 * {@link dev.sekit.Tensor#requiresGrad(boolean)} stays as it is).
 * Otherwise it belongs to the first of {@link #groups()} that matches it, or to the default
 * group (the optimizer's own learning rate and weight decay) when none does. A group's
 * learning rate is the optimizer's times {@link Group#lrScale()}, so a schedule that sets the
 * optimizer's rate moves every group with it, as PyTorch's schedulers do.
 *
 * <p>Names match by prefix on whole components: {@code "stages.0"} (or {@code "stages.0."})
 * matches {@code stages.0.blocks.0.conv_concat.conv.weight} but not {@code stages.01.x}. A
 * prefix that matches no parameter of the model is an error, so a misspelt name cannot
 * silently leave the model unfrozen.
 *
 * <pre>{@code
 * ParamGroups g = ParamGroups.builder()
 *     .freeze("stem", "stages.0")        // not trained at all
 *     .backbone(0.1, "head")             // everything but head.* at a tenth of the rate
 *     .build();
 * }</pre>
 */
public final class ParamGroups {
  /** One group with every parameter: an optimizer without groups. */
  public static final ParamGroups ALL = new ParamGroups(List.of(), List.of());

  /**
   * A rule of the group assignment.
   *
   * @param prefixes name prefixes (whole components)
   * @param complement true: the group holds the parameters under <em>none</em> of the prefixes
   * @param lrScale the group's learning rate over the optimizer's (0 allowed)
   * @param weightDecay the group's weight decay; null for the optimizer's
   */
  public record Group(List<String> prefixes, boolean complement, double lrScale, Double weightDecay) {
    public Group {
      prefixes = checkPrefixes(prefixes);
      if (!(lrScale >= 0) || Double.isInfinite(lrScale)) {
        throw new IllegalArgumentException("lrScale must be a finite number >= 0, got " + lrScale);
      }
      if (weightDecay != null && (!(weightDecay >= 0) || weightDecay.isInfinite())) {
        throw new IllegalArgumentException("weightDecay must be a finite number >= 0, got " + weightDecay);
      }
    }

    /** Whether parameter {@code name} falls into this group. */
    public boolean matches(String name) {
      return under(name, prefixes) != complement;
    }
  }

  private final List<String> frozen;
  private final List<Group> groups;

  private ParamGroups(List<String> frozen, List<Group> groups) {
    this.frozen = List.copyOf(frozen);
    this.groups = List.copyOf(groups);
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Prefixes of the frozen parameters. */
  public List<String> frozen() {
    return frozen;
  }

  /** The groups besides the default one, in the order they were added. */
  public List<Group> groups() {
    return groups;
  }

  /** Whether parameter {@code name} is frozen. */
  public boolean isFrozen(String name) {
    return under(name, frozen);
  }

  /**
   * The group of each parameter in {@code names}: -1 frozen, 0 the default group, {@code 1 + i}
   * the i-th of {@link #groups()}.
   *
   * @throws IllegalArgumentException when a prefix matches none of {@code names}
   */
  public int[] assign(Collection<String> names) {
    Objects.requireNonNull(names, "names");
    List<String> unused = new ArrayList<>();
    for (String p : frozen) {
      if (names.stream().noneMatch(n -> under(n, List.of(p)))) {
        unused.add(p);
      }
    }
    for (Group g : groups) {
      for (String p : g.prefixes()) {
        if (names.stream().noneMatch(n -> under(n, List.of(p)))) {
          unused.add(p);
        }
      }
    }
    if (!unused.isEmpty()) {
      throw new IllegalArgumentException("no parameter of the model is under " + unused + " (parameter names "
          + "look like " + names.stream().limit(3).toList() + ")");
    }
    int[] r = new int[names.size()];
    int i = 0;
    for (String n : names) {
      r[i++] = groupOf(n);
    }
    return r;
  }

  private int groupOf(String name) {
    if (isFrozen(name)) {
      return -1;
    }
    for (int g = 0; g < groups.size(); g++) {
      if (groups.get(g).matches(name)) {
        return g + 1;
      }
    }
    return 0;
  }

  private static boolean under(String name, List<String> prefixes) {
    for (String p : prefixes) {
      String dotted = p.endsWith(".") ? p : p + ".";
      if (name.startsWith(dotted) || name.equals(p)) {
        return true;
      }
    }
    return false;
  }

  /** The prefixes as a list; a null array or element is named (List.of would say nothing). */
  private static List<String> listOf(String method, String[] prefixes) {
    Objects.requireNonNull(prefixes, () -> method + ": the prefixes must not be null");
    for (int i = 0; i < prefixes.length; i++) {
      if (prefixes[i] == null) {
        throw new NullPointerException(method + ": prefix " + (i + 1) + " of " + prefixes.length + " is null; pass "
            + "parameter name prefixes such as \"stem\" or \"stages.0\"");
      }
    }
    return List.of(prefixes);
  }

  private static List<String> checkPrefixes(List<String> prefixes) {
    Objects.requireNonNull(prefixes, "prefixes");
    if (prefixes.isEmpty()) {
      throw new IllegalArgumentException("a rule needs at least one name prefix");
    }
    for (String p : prefixes) {
      Objects.requireNonNull(p, "a name prefix is null; pass parameter name prefixes such as \"stem\"");
      if (p.isEmpty() || p.equals(".")) {
        throw new IllegalArgumentException("a name prefix must not be empty");
      }
    }
    return List.copyOf(prefixes);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ParamGroups g && g.frozen.equals(frozen) && g.groups.equals(groups);
  }

  @Override
  public int hashCode() {
    return Objects.hash(frozen, groups);
  }

  @Override
  public String toString() {
    return "ParamGroups(frozen " + frozen + ", groups " + groups + ")";
  }

  /** Rules, applied in the order added (frozen first, whatever the order). */
  public static final class Builder {
    private final List<String> frozen = new ArrayList<>();
    private final List<Group> groups = new ArrayList<>();

    private Builder() {}

    /** Freezes every parameter under these prefixes (e.g. {@code "stem", "stages.0"}). */
    public Builder freeze(String... prefixes) {
      frozen.addAll(checkPrefixes(listOf("freeze", prefixes)));
      return this;
    }

    /** A group of the parameters under {@code prefixes} at {@code lrScale} times the rate. */
    public Builder group(double lrScale, String... prefixes) {
      groups.add(new Group(listOf("group", prefixes), false, lrScale, null));
      return this;
    }

    /** As {@link #group(double, String...)}, with a weight decay of its own (0: none). */
    public Builder group(double lrScale, double weightDecay, String... prefixes) {
      groups.add(new Group(listOf("group", prefixes), false, lrScale, weightDecay));
      return this;
    }

    /**
     * The backbone, i.e. every parameter not under {@code headPrefixes}, at {@code lrScale}
     * times the rate: a lower rate for the pretrained layers than for a new head.
     */
    public Builder backbone(double lrScale, String... headPrefixes) {
      groups.add(new Group(listOf("backbone", headPrefixes), true, lrScale, null));
      return this;
    }

    /** A rule stated in full. */
    public Builder add(Group g) {
      groups.add(Objects.requireNonNull(g, "group"));
      return this;
    }

    public ParamGroups build() {
      return new ParamGroups(frozen, groups);
    }
  }
}

package dev.sekit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * The committed jextract output must match native/include/sekit.h: every function and
 * constant of the header has its binding, and no binding is left from an older header.
 * (Regenerate with native/jextract.sh.)
 */
class BindingsUpToDateTest {
  @Test
  void everyHeaderFunctionAndConstantIsBound() throws Exception {
    String header = Files.readString(Path.of("native/include/sekit.h"));
    Set<String> functions = new TreeSet<>();
    Matcher m = Pattern.compile("(?m)^SK_API [^(]*?\\b(sk_[a-z0-9_]+)\\(").matcher(header);
    while (m.find()) {
      functions.add(m.group(1));
    }
    Set<String> constants = new TreeSet<>();
    Matcher c = Pattern.compile("(?m)^#define (SK_[A-Z0-9_]+) [0-9]+").matcher(header);
    while (c.find()) {
      constants.add(c.group(1));
    }
    assertTrue(functions.size() > 30, "parsed " + functions);

    Class<?> h = Class.forName("dev.sekit.internal.ffi.sekit_h");
    Set<String> bound = Arrays.stream(h.getMethods()).map(Method::getName)
        .filter(n -> n.startsWith("sk_") || n.startsWith("SK_")).collect(Collectors.toCollection(TreeSet::new));
    Set<String> expected = new TreeSet<>(functions);
    expected.addAll(constants);
    Set<String> boundFunctions = bound.stream().filter(n -> !n.contains("$")).collect(Collectors.toCollection(TreeSet::new));
    assertEquals(expected, boundFunctions, "bindings are stale: run native/jextract.sh");
    Matcher v = Pattern.compile("#define SK_ABI_VERSION (\\d+)").matcher(header);
    assertTrue(v.find());
    assertEquals(Integer.parseInt(v.group(1)), (int) h.getMethod("SK_ABI_VERSION").invoke(null));
    assertEquals(Integer.parseInt(v.group(1)), Sekit.abiVersion(), "the loaded libsekit is stale");
  }
}

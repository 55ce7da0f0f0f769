package dev.sekit.bench;

import dev.sekit.Sekit;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.CompilerControl;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * The cost of one call into native code: sk_noop through the jextract binding, through a
 * hand-made critical(true) handle, a JNI method doing the same, and a plain Java method.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class DowncallBench {
  static final MethodHandle CRITICAL;

  static {
    Sekit.abiVersion(); // loads libsekit
    CRITICAL = Linker.nativeLinker().downcallHandle(
        SymbolLookup.loaderLookup().findOrThrow("sk_noop"),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
        Linker.Option.critical(false));
    System.load(System.getProperty("sekit.bench.jni"));
  }

  static native int jniNoop(int x);

  @CompilerControl(CompilerControl.Mode.DONT_INLINE)
  static int javaNoop(int x) {
    return x;
  }

  int x = 42;

  @Benchmark
  public int ffmGenerated() {
    return sekit_h.sk_noop(x);
  }

  @Benchmark
  public int ffmCritical() throws Throwable {
    return (int) CRITICAL.invokeExact(x);
  }

  @Benchmark
  public int jni() {
    return jniNoop(x);
  }

  @Benchmark
  public int javaMethod() {
    return javaNoop(x);
  }
}

import dev.sekit.*;
import dev.sekit.nn.*;
import java.lang.foreign.Arena;

public class QuickStart {
  public static void main(String[] args) {
    try (Arena arena = Arena.ofConfined()) {                 // owns every native handle below
      var ese = EffectiveSqueezeExcitation.of(arena, 64);      // timm's eSE: hard-sigmoid gate
      var se = SqueezeExcitation.builder(64).rdRatio(1.0 / 16).build(arena);
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 8, 64, 28, 28).requiresGrad(true);
      Tensor y = se.forward(ese.forward(x));
      y.backward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, y.shape()));
      System.out.println(y + ", dL/dx " + x.grad().orElseThrow());
      System.out.println("fc.weight grad " + ese.namedParameters().get("fc.weight").grad().orElseThrow());
    }                                                          // closing the arena frees them all
  }
}

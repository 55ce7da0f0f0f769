/**
 * sekit: Squeeze-and-Excitation (SE), effective SE (eSE) and One-Shot-Aggregation
 * blocks, forward and backward, on libtorch through the Foreign Function &amp; Memory API.
 *
 * <p>Run with {@code --enable-native-access=dev.sekit} on the module path (or
 * {@code --enable-native-access=ALL-UNNAMED} on the class path).
 */
module dev.sekit {
  exports dev.sekit;
  exports dev.sekit.nn;
  exports dev.sekit.io;
  exports dev.sekit.train;
  exports dev.sekit.data;
  exports dev.sekit.dist;

  requires com.google.gson;
  // ImageIO decodes PNG and BMP files (dev.sekit.data.Image).
  requires java.desktop;

  // Gson reads and writes the training records in checkpoints.
  opens dev.sekit.train to com.google.gson;
  // dev.sekit.internal (the one door to native code, with its generated bindings) stays internal.
}

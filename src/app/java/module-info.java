/**
 * The {@code sekit} command-line program (train, ablate, parity): its own module and jar, so
 * that the library module {@code dev.sekit} carries none of its dependencies.
 */
module dev.sekit.app {
  requires dev.sekit;
  requires com.google.gson;
  requires info.picocli;
  requires me.tongfei.progressbar;
  requires org.knowm.xchart;
  requires java.desktop;

  opens dev.sekit.app to info.picocli;
}

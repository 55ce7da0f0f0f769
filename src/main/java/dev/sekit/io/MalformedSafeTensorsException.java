package dev.sekit.io;

import java.io.IOException;
import java.nio.file.Path;

/** A file that is not valid safetensors; the message names the file and what is wrong. */
public final class MalformedSafeTensorsException extends IOException {
  private static final long serialVersionUID = 1L;

  private final transient Path file;

  public MalformedSafeTensorsException(Path file, String problem) {
    super(file + ": not a valid safetensors file: " + problem);
    this.file = file;
  }

  /** The offending file. */
  public Path file() {
    return file;
  }
}

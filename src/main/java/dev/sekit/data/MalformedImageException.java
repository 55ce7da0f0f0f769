package dev.sekit.data;

/** An image file that cannot be decoded: not JPEG, PNG or BMP, corrupt or truncated. */
public final class MalformedImageException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  public MalformedImageException(String message) {
    super(message);
  }

  public MalformedImageException(String message, Throwable cause) {
    super(message, cause);
  }
}

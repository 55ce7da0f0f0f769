package dev.sekit.internal;

import dev.sekit.SekitException;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.MemorySegment;

/** What every native call shares: turning its {@code sk_error*} into an exception. */
final class Calls {
  private Calls() {}

  /** Throws a {@link SekitException} when {@code err} is not NULL, after freeing it. */
  static void check(MemorySegment err) {
    if (err.address() == 0) {
      return;
    }
    int code;
    String message;
    try {
      code = sekit_h.sk_error_code(err);
      message = string(sekit_h.sk_error_message(err));
    } finally {
      sekit_h.sk_error_free(err);
    }
    throw new SekitException(Abi.errorCode(code), message);
  }

  /** A NUL-terminated UTF-8 string the library owns (copied). */
  static String string(MemorySegment cstr) {
    return cstr.reinterpret(Long.MAX_VALUE).getString(0);
  }
}

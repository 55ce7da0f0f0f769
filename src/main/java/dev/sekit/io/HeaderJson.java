package dev.sekit.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON of a safetensors header, read strictly (RFC 8259 and no more, as the format's
 * reference reader does: no comments, no single quotes or unquoted names, no NaN, no
 * duplicate names) and written plainly. Numbers are read as integers only, since every
 * number in a safetensors header is a size or an offset; a fraction or an exponent is an
 * error. Values: {@code Map<String, Object>} (in order), {@code List<Object>}, {@code String},
 * {@code Long}, {@code Boolean}, and {@link #NULL}.
 */
final class HeaderJson {
  /** JSON's null. */
  static final Object NULL = new Object() {
    @Override
    public String toString() {
      return "null";
    }
  };

  private static final int MAX_DEPTH = 64;

  /** A header that is not valid JSON; the message says where and why. */
  static final class SyntaxError extends Exception {
    private static final long serialVersionUID = 1L;

    SyntaxError(String message) {
      super(message);
    }
  }

  private final String s;
  private int i;

  private HeaderJson(String s) {
    this.s = s;
  }

  /** Parses a whole header: one object, then only whitespace. */
  static Map<String, Object> parseObject(String text) throws SyntaxError {
    HeaderJson p = new HeaderJson(text);
    if (text.isEmpty() || text.charAt(0) != '{') {
      throw new SyntaxError("the header must begin with '{', it begins with "
          + (text.isEmpty() ? "nothing" : quote(text.codePointAt(0))));
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> root = (Map<String, Object>) p.value(0);
    p.skipWhitespace();
    if (p.i != text.length()) {
      throw p.error("unexpected " + quote(text.codePointAt(p.i)) + " after the header's object");
    }
    return root;
  }

  private SyntaxError error(String what) {
    return new SyntaxError("header character " + i + ": " + what);
  }

  private static String quote(int codePoint) {
    return codePoint < 0x20 || codePoint == 0x7f
        ? String.format("U+%04X", codePoint)
        : "'" + new String(Character.toChars(codePoint)) + "'";
  }

  private void skipWhitespace() {
    while (i < s.length()) {
      char c = s.charAt(i);
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
        return;
      }
      i++;
    }
  }

  private Object value(int depth) throws SyntaxError {
    if (depth > MAX_DEPTH) {
      throw error("nested deeper than " + MAX_DEPTH + " levels");
    }
    skipWhitespace();
    if (i >= s.length()) {
      throw error("the header ends where a value should be");
    }
    char c = s.charAt(i);
    return switch (c) {
      case '{' -> object(depth);
      case '[' -> array(depth);
      case '"' -> string();
      case 't' -> literal("true", Boolean.TRUE);
      case 'f' -> literal("false", Boolean.FALSE);
      case 'n' -> literal("null", NULL);
      default -> {
        if (c == '-' || (c >= '0' && c <= '9')) {
          yield number();
        }
        throw error("expected a value, found " + quote(s.codePointAt(i)));
      }
    };
  }

  private Object literal(String word, Object v) throws SyntaxError {
    if (!s.startsWith(word, i)) {
      throw error("expected a value, found " + quote(s.codePointAt(i)));
    }
    i += word.length();
    return v;
  }

  private Map<String, Object> object(int depth) throws SyntaxError {
    i++; // '{'
    Map<String, Object> m = new LinkedHashMap<>();
    skipWhitespace();
    if (i < s.length() && s.charAt(i) == '}') {
      i++;
      return m;
    }
    while (true) {
      skipWhitespace();
      if (i >= s.length() || s.charAt(i) != '"') {
        throw error(i >= s.length() ? "the header ends inside an object"
            : "expected '\"' to begin a name, found " + quote(s.codePointAt(i)));
      }
      int at = i;
      String key = string();
      skipWhitespace();
      if (i >= s.length() || s.charAt(i) != ':') {
        throw error("expected ':' after the name \"" + key + "\"");
      }
      i++;
      Object v = value(depth + 1);
      if (m.containsKey(key)) {
        throw new SyntaxError("header character " + at + ": the name \"" + key + "\" appears twice");
      }
      m.put(key, v);
      skipWhitespace();
      if (i >= s.length()) {
        throw error("the header ends inside an object");
      }
      char c = s.charAt(i++);
      if (c == '}') {
        return m;
      }
      if (c != ',') {
        i--;
        throw error("expected ',' or '}' in an object, found " + quote(s.codePointAt(i)));
      }
    }
  }

  private List<Object> array(int depth) throws SyntaxError {
    i++; // '['
    List<Object> a = new ArrayList<>();
    skipWhitespace();
    if (i < s.length() && s.charAt(i) == ']') {
      i++;
      return a;
    }
    while (true) {
      a.add(value(depth + 1));
      skipWhitespace();
      if (i >= s.length()) {
        throw error("the header ends inside an array");
      }
      char c = s.charAt(i++);
      if (c == ']') {
        return a;
      }
      if (c != ',') {
        i--;
        throw error("expected ',' or ']' in an array, found " + quote(s.codePointAt(i)));
      }
    }
  }

  private Long number() throws SyntaxError {
    int start = i;
    if (s.charAt(i) == '-') {
      i++;
    }
    int digits = i;
    while (i < s.length() && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
      i++;
    }
    if (i == digits) {
      throw error("'-' must be followed by digits");
    }
    if (s.charAt(digits) == '0' && i - digits > 1) {
      throw new SyntaxError("header character " + start + ": a number may not have leading zeros");
    }
    if (i < s.length() && (s.charAt(i) == '.' || s.charAt(i) == 'e' || s.charAt(i) == 'E')) {
      throw new SyntaxError("header character " + start + ": numbers in a safetensors header are integers, found "
          + s.substring(start, Math.min(s.length(), i + 8)).split("[,\\]} ]")[0]);
    }
    try {
      return Long.parseLong(s, start, i, 10);
    } catch (NumberFormatException e) {
      throw new SyntaxError("header character " + start + ": the integer " + s.substring(start, i)
          + " does not fit 64 bits");
    }
  }

  private String string() throws SyntaxError {
    int start = i;
    i++; // '"'
    StringBuilder b = new StringBuilder();
    while (true) {
      if (i >= s.length()) {
        throw new SyntaxError("header character " + start + ": a string is not closed");
      }
      char c = s.charAt(i++);
      if (c == '"') {
        return b.toString();
      }
      if (c < 0x20) {
        throw new SyntaxError("header character " + (i - 1) + ": a control character (" + quote(c)
            + ") inside a string must be escaped");
      }
      if (c != '\\') {
        b.append(c);
        continue;
      }
      if (i >= s.length()) {
        throw new SyntaxError("header character " + start + ": a string is not closed");
      }
      char e = s.charAt(i++);
      switch (e) {
        case '"', '\\', '/' -> b.append(e);
        case 'b' -> b.append('\b');
        case 'f' -> b.append('\f');
        case 'n' -> b.append('\n');
        case 'r' -> b.append('\r');
        case 't' -> b.append('\t');
        case 'u' -> {
          char u = hex4();
          if (Character.isHighSurrogate(u)) {
            if (!s.startsWith("\\u", i)) {
              throw error("a lone escaped high surrogate \\u" + hexOf(u) + " (no low one follows)");
            }
            i += 2;
            char low = hex4();
            if (!Character.isLowSurrogate(low)) {
              throw error("a lone escaped high surrogate \\u" + hexOf(u) + " (no low one follows)");
            }
            b.append(u).append(low);
          } else if (Character.isLowSurrogate(u)) {
            throw error("a lone escaped low surrogate \\u" + hexOf(u));
          } else {
            b.append(u);
          }
        }
        default -> throw new SyntaxError("header character " + (i - 2) + ": unknown escape \\" + e);
      }
    }
  }

  private static String hexOf(char c) {
    return String.format("%04x", (int) c);
  }

  private char hex4() throws SyntaxError {
    if (i + 4 > s.length()) {
      throw error("a \\u escape needs four hex digits");
    }
    int v = 0;
    for (int k = 0; k < 4; k++) {
      int d = Character.digit(s.charAt(i + k), 16);
      if (d < 0 || s.charAt(i + k) > 'f') {
        throw error("a \\u escape needs four hex digits");
      }
      v = v * 16 + d;
    }
    i += 4;
    return (char) v;
  }

  // ------------------------------------------------------------------ writing

  /** {@code value} as a JSON string literal. */
  static String string(String value) {
    StringBuilder b = new StringBuilder(value.length() + 2).append('"');
    for (int k = 0; k < value.length(); k++) {
      char c = value.charAt(k);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}

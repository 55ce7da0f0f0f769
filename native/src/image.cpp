// JPEG decoding through libjpeg-turbo's TurboJPEG API, with the settings PIL uses when it
// decodes through the same library (accurate integer DCT, fancy upsampling): the pixels
// equal PIL's Image.open(f).convert("RGB").
#include "internal.hpp"

#include <turbojpeg.h>

#include <cstring>
#include <limits>

namespace {

// One decompressor per thread, made on first use: tjInitDecompress allocates libjpeg's
// state, which is worth keeping between the images a loader thread decodes. After a
// failure it is thrown away: TurboJPEG 2.x leaves libjpeg inside the header of a file
// whose header failed, and every later file on that handle then fails the same way.
struct Decompressor {
  tjhandle h = nullptr;
  ~Decompressor() { reset(); }
  tjhandle get() {
    if (h == nullptr) {
      h = tjInitDecompress();
      if (h == nullptr) throw std::runtime_error(std::string("TurboJPEG: ") + tjGetErrorStr2(nullptr));
    }
    return h;
  }
  void reset() {
    if (h != nullptr) tjDestroy(h);
    h = nullptr;
  }
};
thread_local Decompressor decompressor;

// Runs `body` with this thread's decompressor, replacing the decompressor when it throws.
template <typename F>
void with_decompressor(F&& body) {
  try {
    body(decompressor.get());
  } catch (...) {
    decompressor.reset();
    throw;
  }
}

// The most scans a progressive JPEG may have: libjpeg-turbo's own limit (TJFLAG_LIMITSCANS
// in TurboJPEG 2.1, its default scan limit for the TurboJPEG 2 API in 3.x). Real files have
// about 10; each scan costs a pass over the whole image, so a small file with thousands of
// empty scans would keep the decoder busy for minutes.
constexpr int kMaxScans = 500;

#ifdef TJFLAG_LIMITSCANS
constexpr int kDecodeFlags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
#else
constexpr int kDecodeFlags = TJFLAG_ACCURATEDCT;
#endif

// What walking a JPEG file's markers finds, without decoding: segments are skipped by their
// length, entropy-coded data byte by byte (FF 00 is a stuffed byte, FF D0..D7 a restart
// marker). The walk stops after limit + 1 scans, so a file with too many scans is refused
// before it costs anything, whatever libjpeg-turbo version is linked.
struct Walk {
  int sof = 0;          // the first SOFn marker (0xC0 baseline, 0xC2 progressive, ...)
  int scans = 0;        // SOS markers
  bool eoi = false;     // the walk reached EOI
  bool closed = false;  // a marker follows the last scan's entropy-coded data

  // Whether libjpeg runs out of data before the last row, as PIL decides "image file is
  // truncated" (TurboJPEG also reads on to EOI after the last row, and only warns either
  // way). A single sequential scan is decoded row by row: the rows are all there once its
  // data ends at a marker (a damaged byte can make one). Progressive and multi-scan files
  // are read to EOI before the first row comes out.
  bool truncated() const {
    bool sequential = sof != 0xC2 && sof != 0xC6 && sof != 0xCA && sof != 0xCE;
    return sequential && scans == 1 ? !closed : !eoi;
  }
};

Walk walk_markers(const uint8_t* d, size_t n, int limit) {
  Walk w;
  size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (d[i] != 0xFF) {
      i++;
      continue;
    }
    uint8_t m = d[i + 1];
    if (m == 0xFF) {
      i++;  // fill byte
      continue;
    }
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
      i += 2;  // stuffed byte, TEM, restart marker: no length
      continue;
    }
    if (w.scans > 0) w.closed = true;
    if (m == 0xD9) {  // EOI
      w.eoi = true;
      break;
    }
    if (w.sof == 0 && m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) w.sof = m;
    if (m == 0xDA) {
      if (++w.scans > limit) break;
      w.closed = false;
    }
    if (i + 3 >= n) break;
    size_t len = (static_cast<size_t>(d[i + 2]) << 8) | d[i + 3];
    i += 2 + std::max<size_t>(len, 2);
  }
  return w;
}

// libjpeg's warnings, the messages TurboJPEG reports with TJERR_WARNING when decoding went
// on. PIL decodes through libjpeg with the same rule: a warning (extraneous bytes, a bad
// Huffman code, a scan that ends early) is ignored, an error is an error. TurboJPEG reports
// TJERR_WARNING for a fatal error too once a warning came before it, so the message, not
// the code, tells them apart.
bool is_warning(const char* msg) {
  static const char* const kWarnings[] = {
      "Corrupt JPEG data:",  // extraneous bytes, bad Huffman/arithmetic code, premature end of segment,
                             // marker instead of RST, bad ICC marker
      "Unknown Adobe color transform code",
      "Inconsistent progression sequence",
      "Warning: unknown JFIF revision number",
      "Invalid SOS parameters for sequential JPEG",
      "Application transferred too many scanlines",
  };
  for (const char* w : kWarnings) {
    if (std::strncmp(msg, w, std::strlen(w)) == 0) return true;
  }
  return false;
}

// A failed TurboJPEG call: an error unless it only warned. A file that ends early is an
// error, as in PIL ("image file is truncated"), although libjpeg only warns about it: in its
// header always, in its image data when the walk says `truncated` (TurboJPEG's message is
// only the first warning's, and TurboJPEG reads on to EOI after the last row, where PIL
// stops).
void check(tjhandle h, int rc, const char* what, bool in_header, bool truncated) {
  if (rc == 0) return;
  const char* msg = tjGetErrorStr2(h);  // once: TurboJPEG 2.x clears an instance error as it reads it
  bool eof = std::strstr(msg, "Premature end of JPEG file") != nullptr;
  if (tjGetErrorCode(h) == TJERR_WARNING && (is_warning(msg) || eof)) {
    if (eof && in_header) sekit::fail(what, ": the file is truncated (", msg, ")");
    if (!truncated) return;
    sekit::fail(what, ": the file is truncated (its data ends before the image does)");
  }
  if (eof) sekit::fail(what, ": the file is truncated (", msg, ")");
  sekit::fail(what, ": ", msg);
}

struct Header {
  int width, height, subsamp, colorspace;
};

Header read_header(tjhandle h, const uint8_t* data, size_t len) {
  if (data == nullptr) sekit::fail("data must not be NULL");
  if (len < 4) sekit::fail("data holds ", len, " bytes, too few for a JPEG file");
  if (data[0] != 0xFF || data[1] != 0xD8) sekit::fail("data is not a JPEG file (it does not start with FF D8)");
  if (len > static_cast<size_t>(std::numeric_limits<unsigned long>::max())) {
    sekit::fail("data holds ", len, " bytes, too many for TurboJPEG");
  }
  Header hd{};
  check(h, tjDecompressHeader3(h, data, static_cast<unsigned long>(len), &hd.width, &hd.height, &hd.subsamp,
                               &hd.colorspace),
        "not a readable JPEG file", true, false);
  if (hd.width < 1 || hd.height < 1) sekit::fail("the JPEG file declares a size of ", hd.width, "x", hd.height);
  return hd;
}

void decode(tjhandle h, const uint8_t* data, size_t len, uint8_t* out, int width, int height, int format) {
  Walk w = walk_markers(data, len, kMaxScans);
  if (w.scans > kMaxScans) {
    sekit::fail("the JPEG file has more than ", kMaxScans,
                " scans (a progressive JPEG has about 10); it is refused as malformed");
  }
  check(h, tjDecompress2(h, data, static_cast<unsigned long>(len), out, width, 0, height, format, kDecodeFlags),
        "cannot decode the JPEG file", false, w.truncated());
}

}  // namespace

extern "C" {

sk_error* sk_jpeg_info(const uint8_t* data, size_t len, int32_t* width, int32_t* height) {
  SK_GUARD_BEGIN
  sekit::out_arg(width, "width");
  sekit::out_arg(height, "height");
  with_decompressor([&](tjhandle h) {
    Header hd = read_header(h, data, len);
    *width = hd.width;
    *height = hd.height;
  });
  SK_GUARD_END
}

sk_error* sk_jpeg_decode_rgb(const uint8_t* data, size_t len, uint8_t* out, size_t out_len) {
  SK_GUARD_BEGIN
  with_decompressor([&](tjhandle h) {
    Header hd = read_header(h, data, len);
    sekit::out_arg(out, "out");
    size_t need = static_cast<size_t>(hd.width) * static_cast<size_t>(hd.height) * 3;
    if (out_len != need) {
      sekit::fail("out holds ", out_len, " bytes but the ", hd.width, "x", hd.height, " RGB image needs ", need);
    }
    if (hd.colorspace == TJCS_CMYK || hd.colorspace == TJCS_YCCK) {
      // PIL reads these as Adobe's inverted CMYK and converts with its cmyk2rgb: with
      // c = 255 - raw and nk = 255 - k, each channel is nk - round(c * nk / 255).
      std::vector<uint8_t> cmyk(static_cast<size_t>(hd.width) * hd.height * 4);
      decode(h, data, len, cmyk.data(), hd.width, hd.height, TJPF_CMYK);
      size_t n = static_cast<size_t>(hd.width) * hd.height;
      for (size_t i = 0; i < n; i++) {
        const uint8_t* p = &cmyk[i * 4];
        int nk = p[3];  // 255 - (255 - raw k)
        for (int c = 0; c < 3; c++) {
          int t = (255 - p[c]) * nk + 128;
          int v = nk - (((t >> 8) + t) >> 8);
          out[i * 3 + c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
      }
      return;
    }
    decode(h, data, len, out, hd.width, hd.height, TJPF_RGB);
  });
  SK_GUARD_END
}

}  // extern "C"

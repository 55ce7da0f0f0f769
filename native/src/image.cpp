// JPEG decoding through libjpeg-turbo's TurboJPEG API, with the settings PIL uses when it
// decodes through the same library (accurate integer DCT, fancy upsampling): the pixels
// equal PIL's Image.open(f).convert("RGB").
#include "internal.hpp"

#include <turbojpeg.h>

#include <cstring>

namespace {

// One decompressor per thread, made on first use: tjInitDecompress allocates libjpeg's
// state, which is worth keeping between the images a loader thread decodes.
struct Decompressor {
  tjhandle h = nullptr;
  ~Decompressor() {
    if (h != nullptr) tjDestroy(h);
  }
  tjhandle get() {
    if (h == nullptr) {
      h = tjInitDecompress();
      if (h == nullptr) throw std::runtime_error(std::string("TurboJPEG: ") + tjGetErrorStr2(nullptr));
    }
    return h;
  }
};
thread_local Decompressor decompressor;

struct Header {
  int width, height, subsamp, colorspace;
};

Header read_header(tjhandle h, const uint8_t* data, size_t len) {
  if (data == nullptr) sekit::fail("data must not be NULL");
  if (len < 4) sekit::fail("data holds ", len, " bytes, too few for a JPEG file");
  if (data[0] != 0xFF || data[1] != 0xD8) sekit::fail("data is not a JPEG file (it does not start with FF D8)");
  Header hd{};
  if (tjDecompressHeader3(h, data, static_cast<unsigned long>(len), &hd.width, &hd.height, &hd.subsamp,
                          &hd.colorspace) != 0) {
    sekit::fail("not a readable JPEG file: ", tjGetErrorStr2(h));
  }
  if (hd.width < 1 || hd.height < 1) sekit::fail("the JPEG file declares a size of ", hd.width, "x", hd.height);
  return hd;
}

// A warning from libjpeg (extraneous bytes, a bad marker) does not stop PIL, which
// ignores them; a file that ends early does ("image file is truncated").
void check_decode(tjhandle h, int rc) {
  if (rc == 0) return;
  const char* msg = tjGetErrorStr2(h);
  if (tjGetErrorCode(h) == TJERR_WARNING && std::strstr(msg, "Premature end") == nullptr) return;
  sekit::fail("cannot decode the JPEG file: ", msg);
}

}  // namespace

extern "C" {

sk_error* sk_jpeg_info(const uint8_t* data, size_t len, int32_t* width, int32_t* height) {
  SK_GUARD_BEGIN
  sekit::out_arg(width, "width");
  sekit::out_arg(height, "height");
  Header hd = read_header(decompressor.get(), data, len);
  *width = hd.width;
  *height = hd.height;
  SK_GUARD_END
}

sk_error* sk_jpeg_decode_rgb(const uint8_t* data, size_t len, uint8_t* out, size_t out_len) {
  SK_GUARD_BEGIN
  tjhandle h = decompressor.get();
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
    check_decode(h, tjDecompress2(h, data, static_cast<unsigned long>(len), cmyk.data(), hd.width, 0, hd.height,
                                  TJPF_CMYK, 0));
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
    return nullptr;
  }
  check_decode(h, tjDecompress2(h, data, static_cast<unsigned long>(len), out, hd.width, 0, hd.height, TJPF_RGB, 0));
  SK_GUARD_END
}

}  // extern "C"

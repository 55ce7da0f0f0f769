// Inference preparation: an eval-mode module turned into a fixed plan of oneDNN primitives.
//
// What the plan does that the module's own forward does not:
//  - BatchNorm folded into the convolution before it (weights scaled, a bias added), ReLU
//    fused as a oneDNN post-op: one pass per ConvNormAct instead of three.
//  - One activation layout for the whole network, oneDNN's blocked nChw8c (nChw16c with
//    AVX-512) when every channel count allows it, else NHWC; weights reordered once.
//  - OSA aggregation without a concatenation: the block's input and each layer's output are
//    written straight into their channel slice of the aggregation buffer, which the 1x1
//    aggregation convolution then reads whole.
//  - SE / eSE (and the residual add) as one squeeze pass and one scale pass on the blocked
//    layout, with the excitation on the small fused linear kernels.
//  - Buffers planned once per input size: every intermediate lives at a fixed offset of one
//    arena (buffers whose lifetimes do not overlap share memory), so a steady-state call
//    allocates only its result.
//  - A batch runs image by image through a plan made for one image: the working set of an
//    image stays in cache, and a channel slice of one image is a plain sub-tensor that
//    oneDNN's convolutions read and write in place.
//  - A single image is split by channels instead: each thread computes its share of every
//    layer's output channels with single-threaded primitives, and the threads meet between
//    layers at a barrier of the plan's own (a short spin before any sleep), so that a call
//    wakes its threads once rather than once per layer.
// Modules, dtypes or devices the plan does not cover run the module's own forward without
// autograd (the fallback), so a prepared module always computes the same function.
#include "infer.hpp"

#include "osa.hpp"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include "dnnl_compat.hpp"

#include "dispatch.hpp"

#include <linux/futex.h>
#include <omp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <exception>
#include <map>
#include <tuple>

namespace sekit {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}

// The activation layout of a plan.
struct Layout {
  bool blocked;   // nChw{block}c, else nhwc
  int64_t block;  // 8 or 16 when blocked
  tag full() const {
    if (!blocked) return tag::nhwc;
    return block == 16 ? tag::nChw16c : tag::nChw8c;
  }
};

// A buffer of the arena: one image of [c, h, w] in the plan's layout.
struct Buffer {
  int64_t c, h, w;
  size_t bytes;
  int first = INT_MAX, last = -1;  // ops that touch it
  size_t offset = 0;
};

// A channel slice [c_off, c_off + c) of a buffer; buf == kInput is the call's input image,
// buf == kOutput a result written per call.
constexpr int kInput = -1;
struct ExciteOp;
struct Value {
  int buf;
  int64_t c_off, c, h, w;
  // Not yet scaled by this SE/eSE gate (>= 0): a max pool or the global average pool that
  // follows applies it to its 4x (or HW x) smaller output instead.
  ExciteOp* gate = nullptr;
};

struct Plan;

// Anonymous pages of their own, outside the malloc heap, for a temporary of building a plan:
// unmapped whole when freed. In the heap, megabyte temporaries (glibc's mmap threshold grows
// to their size once one is freed) left holes between the plan's long-lived weights that
// stayed resident: 10 MB of peak RSS in ese_vovnet19b_dw, 21 MB in ese_vovnet39b.
class Pages {
 public:
  explicit Pages(size_t bytes) : bytes_((std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096) {
    p_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p_ == MAP_FAILED) throw std::bad_alloc();
  }
  ~Pages() { munmap(p_, bytes_); }
  Pages(const Pages&) = delete;
  Pages& operator=(const Pages&) = delete;
  char* data() const { return static_cast<char*>(p_); }

 private:
  size_t bytes_;
  void* p_;
};

// Per call: the input image and where results go.
struct RunContext {
  const float* input;  // this image
  std::vector<float*> outputs;  // this image's row of each result
  dnnl::stream* stream;
};

// An op runs in phases, each split into `parts` that may run at once on different threads;
// every part of a phase ends before any part of the next phase starts.
struct Op {
  virtual ~Op() = default;
  virtual void bind(Plan& p) = 0;           // once the arena exists
  virtual void run(Plan& p, RunContext& r, int phase, int part) = 0;
  virtual int phases() const { return 1; }
  int parts = 1;
  std::vector<int> touches;                 // buffer ids
  size_t scratch_bytes = 0;                 // oneDNN scratchpad a part needs from the plan
};

// [begin, end) of part j of n items split into `parts`.
std::pair<int64_t, int64_t> share(int64_t n, int j, int parts) {
  return {n * j / parts, n * (j + 1) / parts};
}

// The channels [c0, c1) of part j of `parts`, in whole blocks of `block` channels.
std::pair<int64_t, int64_t> channel_share(int64_t c, int64_t block, int j, int parts) {
  auto [b0, b1] = share(c / block, j, parts);
  return {b0 * block, b1 * block};
}

// Where the threads of a split plan meet between phases. The threads do equal shares, so the
// wait is usually short: a spin of up to 1 ms, then a few yields, then a sleep on a futex (a
// thread whose peer was descheduled does not keep a core busy). The spin is timed, not
// counted (a pause takes 10 to 140 cycles depending on the CPU), and long enough to cover
// the few-percent imbalance of a large convolution's two halves: waking a sleeper costs
// 0.1-0.3 ms, and the thread it makes late then keeps its peer waiting at the next meeting
// (ese_vovnet19b_dw at batch 1 ran 2-3 % faster than with a 0.1 ms spin).
class Barrier {
 public:
  void wait(int threads) {
    if (threads <= 1) return;
    const unsigned gen = gen_.load();
    if (arrived_.fetch_add(1) + 1 == threads) {
      arrived_.store(0);
      gen_.store(gen + 1);
      if (sleepers_.load() > 0) syscall(SYS_futex, &gen_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
      return;
    }
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
    bool spinning = true;
    for (int i = 0; gen_.load(std::memory_order_acquire) == gen; ++i) {
      if (spinning) {
        _mm_pause();
        if ((i & 63) == 63 && std::chrono::steady_clock::now() >= spin_until) {
          spinning = false;
          i = 0;
        }
      } else if (i < 50) {
        sched_yield();
      } else {
        sleepers_.fetch_add(1);
        while (gen_.load() == gen) syscall(SYS_futex, &gen_, FUTEX_WAIT_PRIVATE, gen, nullptr, nullptr, 0);
        sleepers_.fetch_sub(1);
      }
    }
  }

 private:
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> gen_{0};  // a futex word
  std::atomic<int> sleepers_{0};
  static_assert(sizeof(std::atomic<unsigned>) == sizeof(uint32_t), "a futex word is 32 bits");
};

// What the caller of an emitter wants for the emitter's result: a slot made on demand
// (c, h, w) -> Value, or nothing (a fresh buffer).
using Want = std::function<Value(int64_t c, int64_t h, int64_t w)>;

struct Result {  // one result of the plan
  bool map;      // [N, C, H, W] channels-last; else [N, C] rows
  int64_t c, h, w;
};

struct Plan {
  Layout layout;
  int parts = 1;  // > 1: one image split by channels over this many threads
  int64_t in_c, in_h, in_w;
  bool in_channels_last;
  std::vector<Buffer> buffers;
  std::vector<std::unique_ptr<Op>> ops;
  std::vector<Result> results;
  at::Tensor arena;
  char* base = nullptr;
  // The primitives' scratchpad, owned by the plan (oneDNN's user mode): plans run on
  // different threads at once, so no scratchpad may be shared between them; nor between the
  // parts of a split plan, which has one per part. A worker's copy (`twin` set) only ever
  // runs its parts one after another on one thread: they share one.
  at::Tensor scratch;
  char* scratch_base = nullptr;
  size_t scratch_stride = 0;
  int scratch_slots() const { return twin != nullptr ? 1 : parts; }
  char* scratch_of(int part) const {
    return scratch_base + static_cast<size_t>(part % scratch_slots()) * scratch_stride;
  }
  // Each convolution's weights and bias in the primitive's layout, in build order. A worker's
  // copy of a plan (`twin` set) takes them from the first plan instead of holding its own.
  std::vector<std::pair<memory, memory>> conv_weights;
  const Plan* twin = nullptr;

  memory::desc input_md() const {
    return memory::desc({1, in_c, in_h, in_w}, dt::f32, in_channels_last ? tag::nhwc : tag::nchw);
  }
  memory::desc buffer_md(int b) const {
    const Buffer& B = buffers[static_cast<size_t>(b)];
    return memory::desc({1, B.c, B.h, B.w}, dt::f32, layout.full());
  }
  // A value's memory: blocked slices of one image are dense tensors of their own (the
  // slice offset is a multiple of the block), NHWC slices are sub-memories of the buffer.
  memory::desc md(const Value& v) const {
    if (v.buf == kInput) return input_md();
    if (layout.blocked) return memory::desc({1, v.c, v.h, v.w}, dt::f32, layout.full());
    memory::desc full = buffer_md(v.buf);
    const Buffer& B = buffers[static_cast<size_t>(v.buf)];
    if (v.c_off == 0 && v.c == B.c) return full;
    return full.submemory_desc({1, v.c, v.h, v.w}, {0, v.c_off, 0, 0});
  }
  // The handle for md(v).
  void* handle(const Value& v) const { return layout.blocked ? static_cast<void*>(ptr(v)) : buffer_ptr(v.buf); }
  char* buffer_ptr(int b) const { return base + buffers[static_cast<size_t>(b)].offset; }
  // First element of a value (the slice's own first element).
  float* ptr(const Value& v) const {
    float* p = reinterpret_cast<float*>(buffer_ptr(v.buf));
    const Buffer& B = buffers[static_cast<size_t>(v.buf)];
    if (layout.blocked) return p + (v.c_off / layout.block) * B.h * B.w * layout.block;
    return p + v.c_off;
  }
  int64_t row_stride(const Value& v) const { return buffers[static_cast<size_t>(v.buf)].c; }  // nhwc

  int new_buffer(int64_t c, int64_t h, int64_t w) {
    Buffer b{c, h, w, static_cast<size_t>(c * h * w) * sizeof(float)};
    buffers.push_back(b);
    return static_cast<int>(buffers.size()) - 1;
  }
  Value fresh(int64_t c, int64_t h, int64_t w) { return {new_buffer(c, h, w), 0, c, h, w}; }

  // Lifetimes from the ops, then offsets: largest first, each at the lowest offset that no
  // buffer alive at the same time uses.
  void allocate() {
    for (size_t i = 0; i < ops.size(); ++i)
      for (int b : ops[i]->touches) {
        Buffer& B = buffers[static_cast<size_t>(b)];
        B.first = std::min(B.first, static_cast<int>(i));
        B.last = std::max(B.last, static_cast<int>(i));
      }
    std::vector<size_t> order(buffers.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });
    std::vector<size_t> placed;
    size_t total = 0;
    auto align = [](size_t v) { return (v + 63) / 64 * 64; };
    for (size_t i : order) {
      Buffer& B = buffers[i];
      if (B.last < 0) continue;  // never used
      std::vector<std::pair<size_t, size_t>> busy;
      for (size_t j : placed) {
        const Buffer& o = buffers[j];
        if (o.first <= B.last && B.first <= o.last) busy.emplace_back(o.offset, o.offset + align(o.bytes));
      }
      std::sort(busy.begin(), busy.end());
      size_t at = 0;
      for (auto& r : busy) {
        if (at + align(B.bytes) <= r.first) break;
        at = std::max(at, r.second);
      }
      B.offset = at;
      total = std::max(total, at + align(B.bytes));
      placed.push_back(i);
    }
    arena = at::empty({static_cast<int64_t>(std::max<size_t>(total, 64) + 64)}, at::kByte);
    base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(arena.data_ptr()) + 63) / 64 * 64);
    size_t scratch_part = 0;
    for (auto& op : ops) scratch_part = std::max(scratch_part, op->scratch_bytes);
    if (scratch_part > 0) {
      scratch_stride = align(scratch_part);
      scratch = at::empty({static_cast<int64_t>(scratch_stride * static_cast<size_t>(scratch_slots()) + 64)}, at::kByte);
      scratch_base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(scratch.data_ptr()) + 63) / 64 * 64);
    }
    for (auto& op : ops) op->bind(*this);
  }

  // Thread `tid` of `threads` runs its parts of every phase of every op; with one thread, all
  // of them in order. The first failure stops the work, not the meetings, so that no thread
  // waits for one that left.
  void run(RunContext& r, int tid, int threads, Barrier& meet, std::atomic<bool>& failed, std::exception_ptr& error) {
    for (auto& op : ops)
      for (int phase = 0; phase < op->phases(); ++phase) {
        if (!failed.load(std::memory_order_relaxed)) {
          try {
            for (int j = tid; j < op->parts; j += threads) op->run(*this, r, phase, j);
          } catch (...) {
            if (!failed.exchange(true)) error = std::current_exception();
          }
        }
        meet.wait(threads);
      }
  }

  void add(std::unique_ptr<Op> op, std::initializer_list<Value> values) {
    for (const Value& v : values)
      if (v.buf >= 0) op->touches.push_back(v.buf);
    ops.push_back(std::move(op));
  }
  // The number of parts an op of c channels is split into: the plan's when the layout is
  // blocked (a block-aligned channel range is a tensor of its own), else one.
  int parts_for(int64_t c) const {
    if (parts == 1 || !layout.blocked) return 1;
    return static_cast<int>(std::min<int64_t>(parts, c / layout.block));
  }
  // The channel ranges [c0, c1) of the parts_for(c) parts, in whole blocks.
  std::vector<std::pair<int64_t, int64_t>> channel_parts(int64_t c) const {
    const int n = parts_for(c);
    if (n == 1) return {{0, c}};
    std::vector<std::pair<int64_t, int64_t>> r;
    for (int j = 0; j < n; ++j) r.push_back(channel_share(c, layout.block, j, n));
    return r;
  }
};

// A oneDNN primitive whose arguments are values of the plan; one per part when split (each
// part computes a channel range of the output).
struct DnnlOp : Op {
  struct Part {
    dnnl::primitive prim;
    std::vector<std::pair<int, Value>> value_args;
    std::unordered_map<int, memory> args;  // weights and bias fixed; the rest bound later
    std::vector<dnnl_exec_arg_t> c_args;    // the same, as the C API takes them (no map per call)
    memory::desc scratch_md;
    dnnl_memory_t input_mem = nullptr;
    dnnl_memory_t output_mem = nullptr;
  };
  std::vector<Part> part;
  int output_arg = -1;   // written to result `result` per call (not split)
  int result = -1;
  memory::desc output_md;

  // A part: the primitive of pd on these values.
  template <typename PD, typename Prim>
  Part& add_part(const PD& pd, std::vector<std::pair<int, Value>> values) {
    Part q;
    q.prim = Prim(pd);
    q.scratch_md = pd.scratchpad_desc();
    q.value_args = std::move(values);
    scratch_bytes = std::max(scratch_bytes, q.scratch_md.get_size());
    part.push_back(std::move(q));
    parts = static_cast<int>(part.size());
    return part.back();
  }

  void bind(Plan& p) override {
    for (size_t j = 0; j < part.size(); ++j) {
      Part& q = part[j];
      int input_arg = -1;
      for (auto& [arg, v] : q.value_args) {
        if (v.buf == kInput) {
          input_arg = arg;
          q.args[arg] = memory(p.md(v), engine(), DNNL_MEMORY_NONE);
        } else {
          q.args[arg] = memory(p.md(v), engine(), p.handle(v));
        }
      }
      if (result >= 0) q.args[output_arg] = memory(output_md, engine(), DNNL_MEMORY_NONE);
      if (q.scratch_md.get_size() > 0)
        q.args[DNNL_ARG_SCRATCHPAD] = memory(q.scratch_md, engine(), p.scratch_of(static_cast<int>(j)));
      q.c_args.clear();
      for (auto& [arg, m] : q.args) q.c_args.push_back({arg, m.get()});
      q.input_mem = input_arg >= 0 ? q.args[input_arg].get() : nullptr;
      q.output_mem = result >= 0 ? q.args[output_arg].get() : nullptr;
    }
  }
  // What primitive::execute does, without building an argument vector from the map per call.
  void run(Plan&, RunContext& r, int, int j) override {
    Part& q = part[static_cast<size_t>(j)];
    if (q.input_mem) check(dnnl_memory_set_data_handle(q.input_mem, const_cast<float*>(r.input)), "set an input");
    if (q.output_mem)
      check(dnnl_memory_set_data_handle(q.output_mem, r.outputs[static_cast<size_t>(result)]), "set an output");
    check(dnnl_primitive_execute(q.prim.get(), r.stream->get(), static_cast<int>(q.c_args.size()), q.c_args.data()),
          "execute a primitive");
  }

 private:
  static void check(dnnl_status_t st, const char* what) { dnnl::error::wrap_c_api(st, what); }
};

bool is_reference(const std::string& impl) { return impl.rfind("ref", 0) == 0; }

// Attributes asking for the scratchpad to come from the caller (the plan).
dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

// t (a dense layout of md) converted to float straight into m: no float copy of t in between.
void fill(const memory& m, const at::Tensor& t) {
  if (static_cast<size_t>(t.numel()) * sizeof(float) != m.get_desc().get_size())
    throw std::logic_error("sekit: a plan's weights do not fill their oneDNN descriptor");
  at::from_blob(m.get_data_handle(), t.sizes(), at::TensorOptions(at::kFloat)).copy_(t);
}
memory owned(const at::Tensor& t, const memory::desc& md) {
  memory m(md, engine());
  fill(m, t);
  return m;
}

// ------------------------------------------------------------------------------- kernels

// Channel c of a value at pixel p: blocked slices are dense [c / b, hw, b]; nhwc rows have
// the buffer's channel count as stride.
struct View {
  float* p;
  int64_t c, hw, block, ld;  // block > 0: blocked; else nhwc with row stride ld
  float& at(int64_t ch, int64_t px) const {
    return block > 0 ? p[(ch / block) * hw * block + px * block + ch % block] : p[px * ld + ch];
  }
};

View view(Plan& p, const Value& v) {
  return {p.ptr(v), v.c, v.h * v.w, p.layout.blocked ? p.layout.block : 0,
          p.layout.blocked ? 0 : p.row_stride(v)};
}

// fn(b0, b1) on the channel blocks of part j of `parts`. Split parts run inside a parallel
// region (a split plan's team, or a batch's worker), where at::parallel_for runs inline. In a
// plan of one part, run outside any region, an op spreads its blocks over the threads; an op
// of one part inside a split plan's team runs on one thread while the others wait.
template <typename F>
void over_blocks(int64_t blocks, int j, int parts, const F& fn) {
  auto [b0, b1] = share(blocks, j, parts);
  at::parallel_for(b0, b1, 1, fn);
}

// mean (and max) per channel -> sum[c] (double), max[c]: for the channels of part j of `parts`
// (blocked layout), or all of them.
void squeeze(const View& x, double* sum, float* max, int j = 0, int parts = 1) {
  if (x.block > 0) {
    over_blocks(x.c / x.block, j, parts, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        std::fill(sum + b * x.block, sum + (b + 1) * x.block, 0.0);
        if (max) std::fill(max + b * x.block, max + (b + 1) * x.block, -std::numeric_limits<float>::infinity());
        SEKIT_DISPATCH(squeeze_rows<float>, x.p, b, 0, x.hw, x.hw, x.block, sum + b * x.block,
                       max ? max + b * x.block : nullptr);
      }
    });
    return;
  }
  std::fill(sum, sum + x.c, 0.0);
  if (max) std::fill(max, max + x.c, -std::numeric_limits<float>::infinity());
  for (int64_t px = 0; px < x.hw; ++px) {
    const float* row = x.p + px * x.ld;
    for (int64_t ch = 0; ch < x.c; ++ch) {
      sum[ch] += row[ch];
      if (max) max[ch] = std::max(max[ch], row[ch]);
    }
  }
}

// The channels [c0, c1) part j of `parts` squeezed (all of them when not split).
std::pair<int64_t, int64_t> squeezed_channels(const View& x, int j, int parts) {
  return parts == 1 ? std::pair<int64_t, int64_t>{0, x.c} : channel_share(x.c, x.block, j, parts);
}

float activate(int32_t act, float v) {
  switch (act) {
    case SK_ACT_IDENTITY: return v;
    case SK_ACT_RELU: return v > 0 ? v : 0.f;
    case SK_ACT_SIGMOID: return 1.f / (1.f + std::exp(-v));
    case SK_ACT_HARD_SIGMOID: return std::min(std::max(v + 3.f, 0.f), 6.f) / 6.f;
    case SK_ACT_SILU: return v / (1.f + std::exp(-v));
    case SK_ACT_GELU: return 0.5f * v * (1.f + std::erf(v / std::sqrt(2.f)));
    case SK_ACT_HARD_SWISH: return v * std::min(std::max(v + 3.f, 0.f), 6.f) / 6.f;
    case SK_ACT_TANH: return std::tanh(v);
    default: return v;
  }
}

// z[o] = b[o] + w[o, :] . s for the rows [r0, r1) on the fused kernels' small linear layer
// (spread over the threads outside a parallel region, as over_blocks).
void linear(const float* s, const float* w, const float* b, float* z, int64_t in, int64_t out, int64_t r0,
            int64_t r1) {
  at::parallel_for(r0, r1, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, in)), [&](int64_t a0, int64_t a1) {
    SEKIT_DISPATCH(linear_forward<float>, s, w, b, z, a0, a1, in, out);
  });
}

// SE / eSE on a value, with the residual added after the scale: y = z * gate(z) (+ x).
// Phases: the squeeze, the excitation (rows of the gate), the scale.
struct ExciteOp : Op {
  ExcitationParams e;
  at::Tensor w1, b1, w2, b2;  // float
  Value z, y, res;
  bool has_res = false;
  bool defer = false;  // leave the scale to a later op (ScaleOp, HeadOp)
  std::vector<double> sum;
  std::vector<float> mean, max, hidden, gate;  // hidden: one row per part

  int phases() const override { return defer ? 2 : 3; }
  void bind(Plan&) override {
    sum.resize(static_cast<size_t>(z.c));
    mean.resize(static_cast<size_t>(z.c));
    max.resize(e.add_maxpool ? static_cast<size_t>(z.c) : 0);
    hidden.resize(static_cast<size_t>(e.reduced * parts));
    gate.resize(static_cast<size_t>(z.c));
  }
  void run(Plan& p, RunContext&, int phase, int j) override {
    View vz = view(p, z);
    if (phase == 0) {
      squeeze(vz, sum.data(), e.add_maxpool ? max.data() : nullptr, j, parts);
      auto [c0, c1] = squeezed_channels(vz, j, parts);
      for (int64_t c = c0; c < c1; ++c) {
        float m = static_cast<float>(sum[static_cast<size_t>(c)] / static_cast<double>(vz.hw));
        mean[static_cast<size_t>(c)] = e.add_maxpool ? 0.5f * (m + max[static_cast<size_t>(c)]) : m;
      }
      return;
    }
    if (phase == 1) {
      auto [r0, r1] = share(z.c, j, parts);
      if (e.se) {  // every part computes the (small) hidden layer, then its rows of the gate
        float* h = hidden.data() + static_cast<size_t>(j) * static_cast<size_t>(e.reduced);
        linear(mean.data(), w1.data_ptr<float>(), b1.data_ptr<float>(), h, z.c, e.reduced, 0, e.reduced);
        for (int64_t k = 0; k < e.reduced; ++k) h[k] = activate(e.act, h[k]);
        linear(h, w2.data_ptr<float>(), b2.data_ptr<float>(), gate.data(), e.reduced, z.c, r0, r1);
      } else {
        linear(mean.data(), w1.data_ptr<float>(), b1.data_ptr<float>(), gate.data(), z.c, z.c, r0, r1);
      }
      for (int64_t c = r0; c < r1; ++c) gate[static_cast<size_t>(c)] = activate(e.gate, gate[static_cast<size_t>(c)]);
      return;
    }
    View vy = view(p, y);
    const float* g = gate.data();
    if (vz.block > 0 && vy.block > 0 && !has_res) {
      over_blocks(z.c / vz.block, j, parts, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          SEKIT_DISPATCH(scale_rows<float>, vz.p, g, vy.p, b, 0, vz.hw, vz.hw, vz.block);
      });
      return;
    }
    View vx = has_res ? view(p, res) : View{};
    if (vz.block > 0) {
      const int64_t B = vz.block;
      over_blocks(z.c / B, j, parts, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const float* zp = vz.p + b * vz.hw * B;
          const float* xp = vx.p + b * vz.hw * B;
          float* yp = vy.p + b * vz.hw * B;
          const float* gb = g + b * B;
          for (int64_t px = 0; px < vz.hw; ++px)
            for (int64_t k = 0; k < B; ++k) yp[px * B + k] = zp[px * B + k] * gb[k] + xp[px * B + k];
        }
      });
      return;
    }
    for (int64_t px = 0; px < vz.hw; ++px)
      for (int64_t c = 0; c < z.c; ++c) {
        float v = vz.p[px * vz.ld + c] * g[c];
        if (has_res) v += vx.p[px * vx.ld + c];
        vy.p[px * vy.ld + c] = v;
      }
  }
};

// v *= gate, in place: a deferred SE/eSE scale applied to what its max pool produced.
struct ScaleOp : Op {
  Value v;
  ExciteOp* gate;
  void bind(Plan&) override {}
  void run(Plan& p, RunContext&, int, int j) override {
    View x = view(p, v);
    const float* g = gate->gate.data();
    if (x.block > 0) {
      over_blocks(v.c / x.block, j, parts, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) SEKIT_DISPATCH(scale_rows<float>, x.p, g, x.p, b, 0, x.hw, x.hw, x.block);
      });
      return;
    }
    for (int64_t px = 0; px < x.hw; ++px)
      for (int64_t c = 0; c < v.c; ++c) x.p[px * x.ld + c] *= g[c];
  }
};

// y = z + x (a residual block without attention).
struct AddOp : Op {
  Value z, x, y;
  void bind(Plan&) override {}
  void run(Plan& p, RunContext&, int, int j) override {
    View vz = view(p, z), vx = view(p, x), vy = view(p, y);
    if (vz.block > 0) {
      const int64_t per_block = vz.hw * vz.block;
      over_blocks(z.c / vz.block, j, parts, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0 * per_block; i < b1 * per_block; ++i) vy.p[i] = vz.p[i] + vx.p[i];
      });
      return;
    }
    for (int64_t px = 0; px < vz.hw; ++px)
      for (int64_t c = 0; c < z.c; ++c) vy.p[px * vy.ld + c] = vz.p[px * vz.ld + c] + vx.p[px * vx.ld + c];
  }
};

// Global average pool (and a Linear) into this image's row of a result. Phases: the pool,
// the Linear (rows of the result).
struct HeadOp : Op {
  Value x;
  ExciteOp* gate = nullptr;  // a deferred scale: mean(z * g) = mean(z) * g
  int result = 0;
  at::Tensor w, b;  // float [K, C], [K]; undefined: pooled features only
  std::vector<double> sum;
  std::vector<float> pooled;
  int phases() const override { return w.defined() ? 2 : 1; }
  void bind(Plan&) override {
    sum.resize(static_cast<size_t>(x.c));
    pooled.resize(static_cast<size_t>(x.c));
  }
  void run(Plan& p, RunContext& r, int phase, int j) override {
    float* out = r.outputs[static_cast<size_t>(result)];
    if (phase == 1) {
      auto [k0, k1] = share(w.size(0), j, parts);
      linear(pooled.data(), w.data_ptr<float>(), b.data_ptr<float>(), out, x.c, w.size(0), k0, k1);
      return;
    }
    View v = view(p, x);
    squeeze(v, sum.data(), nullptr, j, parts);
    auto [c0, c1] = squeezed_channels(v, j, parts);
    float* dst = w.defined() ? pooled.data() : out;
    for (int64_t c = c0; c < c1; ++c) dst[c] = static_cast<float>(sum[static_cast<size_t>(c)] / static_cast<double>(v.hw));
    if (gate)
      for (int64_t c = c0; c < c1; ++c) dst[c] *= gate->gate[static_cast<size_t>(c)];
  }
};

// ------------------------------------------------------------------------------- builder

// A module the plan does not cover: the source runs it, for every input size.
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An input size the plan does not cover (as oneDNN's own refusals, dnnl::error): the source
// runs inputs of that size.
struct SizeRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Builder {
 public:
  Builder(Plan& p) : p_(p) {}

  // Emits m's ops on x; the result goes where `want` says, if given.
  Value build(Module& m, Value x, const Want& want) {
    if (auto* s = dynamic_cast<Sequential*>(&m)) return chain(s->items(), x, want);
    if (auto* c = dynamic_cast<ConvNormAct*>(&m)) return conv_norm_act(*c, settle(x), want);
    if (auto* mp = dynamic_cast<MaxPool2d*>(&m)) return pool(x, mp->kernel(), mp->stride(), mp->ceil_mode(), want);
    if (auto* b = dynamic_cast<OsaBlock*>(&m)) return osa_block(*b, settle(x), want);
    if (auto* st = dynamic_cast<OsaStage*>(&m)) {
      Value h = x;
      if (st->downsample()) h = pool(x, 3, 2, true, input_want(st->blocks()));
      return chain(st->blocks(), h, want);
    }
    ExcitationParams e;
    if (excitation_params(m, e)) {
      x = materialize(x);
      return excite(e, x, nullptr, want);
    }
    throw Unsupported(std::string("no plan for ") + typeid(m).name());
  }

  Value chain(const std::vector<std::shared_ptr<Module>>& items, Value x, const Want& want) {
    for (size_t i = 0; i < items.size(); ++i) {
      const bool last = i + 1 == items.size();
      if (auto* head = dynamic_cast<ClassifierHead*>(items[i].get())) {
        if (!last) throw Unsupported("a ClassifierHead before the end of a Sequential");
        classifier(head->fc(), x);
        return x;
      }
      Want w = last ? want : input_want({items.begin() + static_cast<std::ptrdiff_t>(i) + 1, items.end()});
      x = build(*items[i], x, w);
    }
    return x;
  }

  // Global average pool, then fc when given: a [N, K] (or [N, C]) result.
  void classifier(Linear* fc, Value x) {
    ExciteOp* gate = x.gate;
    x.gate = nullptr;
    x = materialize(x);
    auto op = std::make_unique<HeadOp>();
    op->x = x;
    op->gate = gate;
    op->result = static_cast<int>(p_.results.size());
    op->parts = p_.parts_for(x.c);
    int64_t k = x.c;
    if (fc) {
      c10::NoGradGuard g;
      if (fc->weight().size(1) != x.c) throw Unsupported("head width");
      op->w = fc->weight().to(at::kFloat).contiguous();
      op->b = fc->bias() ? fc->bias()->to(at::kFloat).contiguous() : at::zeros({fc->weight().size(0)}, at::kFloat);
      k = fc->weight().size(0);
    }
    p_.results.push_back({false, k, 1, 1});
    p_.add(std::move(op), {x});
  }

  // Copies x (in any layout) into a result map [N, C, H, W] channels-last; returns x
  // (scaled, when it had a deferred gate).
  Value tap(Value x) {
    x = settle(x);
    auto op = std::make_unique<DnnlOp>();
    memory::desc out_md({1, x.c, x.h, x.w}, dt::f32, tag::nhwc);
    memory::desc src_md = p_.md(x);
    op->add_part<dnnl::reorder::primitive_desc, dnnl::reorder>(
        dnnl::reorder::primitive_desc(engine(), src_md, engine(), out_md, user_scratchpad()), {{DNNL_ARG_FROM, x}});
    op->output_arg = DNNL_ARG_TO;
    op->output_md = out_md;
    op->result = static_cast<int>(p_.results.size());
    p_.results.push_back({true, x.c, x.h, x.w});
    p_.add(std::move(op), {x});
    return x;
  }

  // x with its deferred SE/eSE scale applied (in place).
  Value settle(Value x) {
    if (!x.gate) return x;
    auto op = std::make_unique<ScaleOp>();
    op->gate = x.gate;
    x.gate = nullptr;
    op->v = x;
    op->parts = p_.parts_for(x.c);
    p_.add(std::move(op), {x});
    return x;
  }

  // Where the first of `items` wants its input (an OSA block: slice 0 of its aggregation
  // buffer), or nothing.
  Want input_want(const std::vector<std::shared_ptr<Module>>& items) {
    if (items.empty()) return nullptr;
    Module* m = items.front().get();
    if (auto* s = dynamic_cast<Sequential*>(m)) return input_want(s->items());
    if (auto* st = dynamic_cast<OsaStage*>(m)) return st->downsample() ? nullptr : input_want(st->blocks());
    if (auto* b = dynamic_cast<OsaBlock*>(m)) {
      return [this, b](int64_t c, int64_t h, int64_t w) {
        Value cat = p_.fresh(aggregate_channels(*b), h, w);
        pending_[b] = cat.buf;
        return Value{cat.buf, 0, c, h, w};
      };
    }
    return nullptr;
  }

 private:
  static int64_t aggregate_channels(OsaBlock& b) {
    int64_t c = b.in_channels();
    for (auto& m : b.conv_mid()) c += out_channels(*m);
    return c;
  }
  static int64_t out_channels(Module& m) {
    auto* c = dynamic_cast<ConvNormAct*>(&m);
    if (!c) throw Unsupported("an OSA layer that is not a ConvNormAct");
    return c->separable() ? c->conv_pw()->out_channels() : c->conv()->out_channels();
  }

  // The input image or a value the custom kernels can read: the input is copied into a
  // buffer first.
  Value materialize(Value x) {
    x = settle(x);
    if (x.buf != kInput) return x;
    Value v = p_.fresh(x.c, x.h, x.w);
    copy(x, v);
    return v;
  }

  void copy(Value from, Value to) {
    auto op = std::make_unique<DnnlOp>();
    op->add_part<dnnl::reorder::primitive_desc, dnnl::reorder>(
        dnnl::reorder::primitive_desc(engine(), p_.md(from), engine(), p_.md(to), user_scratchpad()),
        {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
    p_.add(std::move(op), {from, to});
  }

  Value target(const Want& want, int64_t c, int64_t h, int64_t w) {
    return want ? want(c, h, w) : p_.fresh(c, h, w);
  }

  // A convolution with folded weights [O, I/g, k, k] and bias [O], ReLU when `relu`.
  Value conv(Value x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride, int64_t pad,
             int64_t groups, bool relu, const Want& want) {
    x = settle(x);
    // Weights that do not fit the input are the module's own error, which its unprepared
    // forward reports; the plan never copies them.
    if (weight.dim() != 4 || weight.size(1) * groups != x.c || weight.size(0) % groups != 0 ||
        weight.size(2) != weight.size(3))
      throw Unsupported("convolution weights that do not fit the input");
    const int64_t o = weight.size(0), k = weight.size(2);
    const int64_t oh = (x.h + 2 * pad - k) / stride + 1, ow = (x.w + 2 * pad - k) / stride + 1;
    Value y = target(want, o, oh, ow);
    // oc output channels from ic input channels in g groups: the layout the primitive
    // chooses (any), or PyTorch's.
    auto weights_md = [&](int64_t oc, int64_t ic, int64_t g, bool any) {
      return g == 1 ? memory::desc({oc, ic, k, k}, dt::f32, any ? tag::any : tag::oihw)
                    : memory::desc({g, oc / g, ic / g, k, k}, dt::f32, any ? tag::any : tag::goihw);
    };
    dnnl::primitive_attr attr = user_scratchpad();
    if (relu) attr.set_post_ops(dnnl_compat::relu());
    // Dense 3x3 stride-1 convolutions through Winograd where oneDNN has it (oneDNN 2 on
    // AVX-512; oneDNN 3 has no x86 float32 Winograd): fewer multiplications for the same
    // result within float32 rounding (ese_vovnet39b's logits stay 3e-7 from float64);
    // elsewhere, or where it has no implementation, direct.
    const bool winograd = dnnl_compat::kHasWinograd && groups == 1 && k == 3 && stride == 1;
    // The primitive for oc output channels from ic input channels in g groups.
    auto make = [&](const memory::desc& src, const memory::desc& dst, int64_t oc, int64_t ic, int64_t g) {
      auto attempt = [&](dnnl::algorithm alg) {
        return dnnl_compat::convolution(engine(), alg, src, weights_md(oc, ic, g, true),
                                        memory::desc({oc}, dt::f32, tag::x), dst, {stride, stride}, {pad, pad},
                                        {pad, pad}, attr);
      };
      if (winograd) {
        auto pd = attempt(dnnl::algorithm::convolution_winograd);
        if (pd && !is_reference(pd.impl_info_str())) return pd;
      }
      return attempt(dnnl::algorithm::convolution_direct);
    };
    auto bad = [](const dnnl::convolution_forward::primitive_desc& q) {
      return !q || is_reference(q.impl_info_str());
    };
    // Read and write slices in place when a fast implementation takes them; else through
    // a dense copy.
    Value src = x, dst = y;
    auto pd = make(p_.md(src), p_.md(dst), o, x.c, groups);
    if (bad(pd) && is_slice(y)) {
      dst = p_.fresh(o, oh, ow);
      pd = make(p_.md(src), p_.md(dst), o, x.c, groups);
    }
    if (bad(pd) && is_slice(x)) {
      src = p_.fresh(x.c, x.h, x.w);
      copy(x, src);
      pd = make(p_.md(src), p_.md(dst), o, x.c, groups);
    }
    if (!pd) throw Unsupported("no oneDNN convolution");
    // A split plan's parts each compute a block-aligned range of the output channels: of a
    // dense convolution from the whole input, of a depthwise one from the same input range.
    struct Piece {
      int64_t c0, c1;
      dnnl::convolution_forward::primitive_desc pd;
    };
    std::vector<Piece> pieces{{0, o, pd}};
    const bool depthwise = groups > 1 && groups == o && groups == x.c && src.buf != kInput;
    const auto ranges = groups == 1 || depthwise ? p_.channel_parts(o) : std::vector<std::pair<int64_t, int64_t>>{{0, o}};
    if (ranges.size() > 1) {
      std::vector<Piece> split;
      for (auto [c0, c1] : ranges) {
        auto q = make(p_.md(depthwise ? channels(src, c0, c1) : src), p_.md(channels(dst, c0, c1)), c1 - c0,
                      depthwise ? c1 - c0 : x.c, depthwise ? c1 - c0 : 1);
        if (bad(q)) break;
        split.push_back({c0, c1, q});
      }
      if (split.size() == ranges.size()) pieces = std::move(split);
    }
    // A depthwise piece is its own channels' convolution; any other piece reads every input.
    const bool split_depthwise = depthwise && pieces.size() > 1;
    auto op = std::make_unique<DnnlOp>();
    for (const Piece& piece : pieces) {
      const int64_t oc = piece.c1 - piece.c0, g = split_depthwise ? oc : groups;
      const size_t at = p_.conv_weights.size();
      if (p_.twin != nullptr && at < p_.twin->conv_weights.size() &&
          p_.twin->conv_weights[at].first.get_desc() == piece.pd.weights_desc()) {
        p_.conv_weights.push_back(p_.twin->conv_weights[at]);  // shared, read-only while running
      } else {
        const memory::desc given = weights_md(oc, split_depthwise ? oc : x.c, g, false);
        Pages scratch_pages(given.get_size());
        memory w_mem(given, engine(), scratch_pages.data());
        fill(w_mem, weight.narrow(0, piece.c0, oc));
        memory w_prim(piece.pd.weights_desc(), engine());
        dnnl::stream s(engine());
        dnnl::reorder(w_mem, w_prim).execute(s, w_mem, w_prim);
        s.wait();
        p_.conv_weights.emplace_back(w_prim, owned(bias.narrow(0, piece.c0, oc), memory::desc({oc}, dt::f32, tag::x)));
      }
      Value in = split_depthwise ? channels(src, piece.c0, piece.c1) : src;
      auto& q = op->add_part<dnnl::convolution_forward::primitive_desc, dnnl::convolution_forward>(
          piece.pd, {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, pieces.size() > 1 ? channels(dst, piece.c0, piece.c1) : dst}});
      q.args[DNNL_ARG_WEIGHTS] = p_.conv_weights.back().first;
      q.args[DNNL_ARG_BIAS] = p_.conv_weights.back().second;
    }
    p_.add(std::move(op), {src, dst});
    if (dst.buf != y.buf) copy(dst, y);
    return y;
  }

  // Channels [c0, c1) of v.
  static Value channels(Value v, int64_t c0, int64_t c1) {
    v.c_off += c0;
    v.c = c1 - c0;
    return v;
  }

  bool is_slice(const Value& v) const {
    if (v.buf == kInput || p_.layout.blocked) return false;
    return v.c_off != 0 || v.c != p_.buffers[static_cast<size_t>(v.buf)].c;
  }

  Value conv_norm_act(ConvNormAct& c, Value x, const Want& want) {
    c10::NoGradGuard g;
    auto [scale, shift] = c.bn()->affine();
    Conv2d* last = c.separable() ? c.conv_pw() : c.conv();
    // BatchNorm folded: w' = w * scale[o], b' = shift (the convolution has no bias).
    at::Tensor w = last->weight().to(at::kDouble) * scale.reshape({-1, 1, 1, 1});
    if (last->bias()) shift = shift + last->bias()->to(at::kDouble) * scale;
    Value h = x;
    if (c.separable()) {
      Conv2d* dw = c.conv_dw();
      at::Tensor b = dw->bias() ? dw->bias()->to(at::kDouble) : at::zeros({dw->out_channels()}, at::kDouble);
      h = conv(h, dw->weight(), b, dw->stride(), dw->padding(), dw->groups(), false, nullptr);
    }
    return conv(h, w, shift, last->stride(), last->padding(), last->groups(), true, want);
  }

  // Max pooling; a deferred gate g >= 0 is applied after it: max(z * g) = max(z) * g.
  Value pool(Value x, int64_t k, int64_t s, bool ceil, const Want& want) {
    ExciteOp* gate = x.gate;
    x.gate = nullptr;
    // PyTorch's pooling_output_shape (padding 0, dilation 1), whose division rounds down.
    auto out = [&](int64_t n) {
      const int64_t num = n - k + (ceil ? s - 1 : 0);
      int64_t o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
      if (ceil && (o - 1) * s >= n) --o;
      return o;
    };
    const int64_t oh = out(x.h), ow = out(x.w);
    if (oh < 1 || ow < 1) throw SizeRefused("max pool of an input smaller than its output needs");
    const int64_t ph = (oh - 1) * s + k - x.h, pw = (ow - 1) * s + k - x.w;
    if (ph < 0 || pw < 0) throw SizeRefused("max pool that drops a remainder");
    Value y = target(want, x.c, oh, ow);
    auto make = [&](const memory::desc& src, const memory::desc& dst) {
      return dnnl_compat::max_pooling(engine(), src, dst, {s, s}, {k, k}, {0, 0}, {ph, pw}, user_scratchpad());
    };
    Value src = x, dst = y;
    auto pd = make(p_.md(src), p_.md(dst));
    auto bad = [](const dnnl::pooling_forward::primitive_desc& q) { return !q || is_reference(q.impl_info_str()); };
    if (bad(pd) && is_slice(y)) {
      dst = p_.fresh(x.c, oh, ow);
      pd = make(p_.md(src), p_.md(dst));
    }
    if (bad(pd) && (is_slice(x) || x.buf == kInput)) {
      src = p_.fresh(x.c, x.h, x.w);
      copy(x, src);
      pd = make(p_.md(src), p_.md(dst));
    }
    if (!pd) throw Unsupported("no oneDNN pooling");
    auto op = std::make_unique<DnnlOp>();
    // Split plans: each part pools a block-aligned channel range.
    const auto ranges = src.buf == kInput ? std::vector<std::pair<int64_t, int64_t>>{{0, x.c}} : p_.channel_parts(x.c);
    std::vector<dnnl::pooling_forward::primitive_desc> split;
    for (size_t j = 0; ranges.size() > 1 && j < ranges.size(); ++j) {
      auto q = make(p_.md(channels(src, ranges[j].first, ranges[j].second)),
                    p_.md(channels(dst, ranges[j].first, ranges[j].second)));
      if (bad(q)) break;
      split.push_back(q);
    }
    if (ranges.size() > 1 && split.size() == ranges.size()) {
      for (size_t j = 0; j < ranges.size(); ++j) {
        auto [c0, c1] = ranges[j];
        op->add_part<dnnl::pooling_forward::primitive_desc, dnnl::pooling_forward>(
            split[j], {{DNNL_ARG_SRC, channels(src, c0, c1)}, {DNNL_ARG_DST, channels(dst, c0, c1)}});
      }
    } else {
      op->add_part<dnnl::pooling_forward::primitive_desc, dnnl::pooling_forward>(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    }
    p_.add(std::move(op), {src, dst});
    if (dst.buf != y.buf) copy(dst, y);
    y.gate = gate;
    return settle(y);
  }

  static bool nonnegative(int32_t gate) { return gate == SK_ACT_SIGMOID || gate == SK_ACT_HARD_SIGMOID; }

  Value excite(const ExcitationParams& e, Value z, const Value* res, const Want& want) {
    auto op = std::make_unique<ExciteOp>();
    op->e = e;
    op->w1 = e.w1.to(at::kFloat).contiguous();
    op->b1 = e.b1.to(at::kFloat).contiguous();
    if (e.se) {
      op->w2 = e.w2.to(at::kFloat).contiguous();
      op->b2 = e.b2.to(at::kFloat).contiguous();
    }
    op->z = z;
    op->y = want ? want(z.c, z.h, z.w) : z;  // in place unless told where
    op->parts = p_.parts_for(z.c);
    if (res) {
      op->res = *res;
      op->has_res = true;
    }
    Value y = op->y;
    last_excite_ = op.get();
    if (res)
      p_.add(std::move(op), {z, y, *res});
    else
      p_.add(std::move(op), {z, y});
    return y;
  }

  Value osa_block(OsaBlock& b, Value x, const Want& want) {
    const int64_t total = aggregate_channels(b);
    // The aggregation buffer: x already in slice 0 when the producer wrote it there.
    Value cat;
    auto it = pending_.find(&b);
    if (it != pending_.end() && x.buf == it->second && x.c_off == 0) {
      cat = Value{x.buf, 0, total, x.h, x.w};
    } else {
      cat = p_.fresh(total, x.h, x.w);
      Value slot{cat.buf, 0, x.c, x.h, x.w};
      copy(x, slot);
      x = slot;
    }
    pending_.erase(&b);
    Value h = x;
    if (b.conv_reduction()) h = build(*b.conv_reduction(), x, nullptr);
    int64_t off = x.c;
    for (auto& layer : b.conv_mid()) {
      const int64_t c = out_channels(*layer);
      const int64_t buf = cat.buf, o = off;
      h = build(*layer, h, [buf, o](int64_t cc, int64_t hh, int64_t ww) { return Value{static_cast<int>(buf), o, cc, hh, ww}; });
      off += c;
    }
    Module* attn = b.attn();
    const bool tail = attn || b.residual();
    Value z = build(*b.conv_concat(), cat, tail ? nullptr : want);
    if (attn) {
      ExcitationParams e;
      if (!excitation_params(*attn, e)) throw Unsupported("OSA attention");
      if (!b.residual() && !want && nonnegative(e.gate)) {
        // The scale waits for the consumer: a max pool or the head scales a smaller tensor.
        Value y = excite(e, z, nullptr, nullptr);
        y.gate = last_excite_;
        last_excite_->defer = true;
        return y;
      }
      return excite(e, z, b.residual() ? &x : nullptr, want);
    }
    if (b.residual()) {
      auto op = std::make_unique<AddOp>();
      op->z = z;
      op->x = x;
      op->y = want ? want(z.c, z.h, z.w) : z;
      op->parts = p_.parts_for(z.c);
      Value y = op->y;
      p_.add(std::move(op), {z, x, y});
      return y;
    }
    return z;
  }

  Plan& p_;
  std::map<OsaBlock*, int> pending_;
  ExciteOp* last_excite_ = nullptr;
};

// Channel counts that become buffer widths or slice offsets.
void collect_channels(Module& m, std::vector<int64_t>& out) {
  m.visit([&](Module& c) {
    if (auto* conv = dynamic_cast<Conv2d*>(&c)) out.push_back(conv->out_channels());
    if (auto* b = dynamic_cast<OsaBlock*>(&c)) out.push_back(b->in_channels());
    ExcitationParams e;
    if (dynamic_cast<ConvNormAct*>(&c) == nullptr && excitation_params(c, e)) out.push_back(e.channels);
  });
}

Layout choose_layout(Module& m) {
  std::vector<int64_t> chans;
  collect_channels(m, chans);
  auto all = [&](int64_t b) { return std::all_of(chans.begin(), chans.end(), [b](int64_t c) { return c % b == 0; }); };
  if (__builtin_cpu_supports("avx512f") && all(16)) return {true, 16};
  if (all(8)) return {true, 8};
  return {false, 0};
}

}  // namespace

// ----------------------------------------------------------------------------- the module

namespace {

bool coverable(Module& root) {
  bool ok = true;
  root.visit([&](Module& m) {
    ExcitationParams e;
    if (!(dynamic_cast<Sequential*>(&m) || dynamic_cast<ConvNormAct*>(&m) || dynamic_cast<Conv2d*>(&m) ||
          dynamic_cast<BatchNorm2d*>(&m) || dynamic_cast<MaxPool2d*>(&m) || dynamic_cast<OsaBlock*>(&m) ||
          dynamic_cast<OsaStage*>(&m) || dynamic_cast<ClassifierHead*>(&m) || dynamic_cast<Linear*>(&m) ||
          dynamic_cast<VoVNet*>(&m) || excitation_params(m, e)))
      ok = false;
  });
  return ok;
}

// Channels the first layer of m takes, or -1 when unknown.
int64_t input_channels(Module& m) {
  if (auto* net = dynamic_cast<VoVNet*>(&m)) return net->in_channels();
  if (auto* s = dynamic_cast<Sequential*>(&m)) return s->items().empty() ? -1 : input_channels(*s->items().front());
  if (auto* c = dynamic_cast<ConvNormAct*>(&m)) return (c->separable() ? c->conv_dw() : c->conv())->in_channels();
  if (auto* b = dynamic_cast<OsaBlock*>(&m)) return b->in_channels();
  if (auto* st = dynamic_cast<OsaStage*>(&m)) return st->blocks().empty() ? -1 : input_channels(*st->blocks().front());
  ExcitationParams e;
  if (excitation_params(m, e)) return e.channels;
  return -1;
}

}  // namespace

// Whether every value of x (float32) is finite. The plan does not carry NaN and infinity as
// PyTorch does: oneDNN's max pooling drops a NaN (its maximum keeps the other operand), so one
// NaN pixel before a pool gave finite logits, and the planned convolution turns an infinite
// input value into NaN where PyTorch's gives an infinity. Inputs with NaN or infinity
// therefore run the source's own forward, which propagates them as PyTorch. One pass over the
// input (an unsigned maximum of the magnitude bits, which the compiler vectorises).
static bool all_finite(const at::Tensor& x) {
  if (!x.is_contiguous() && !x.is_contiguous(at::MemoryFormat::ChannelsLast))
    return at::isfinite(x).all().item<bool>();
  const auto* p = static_cast<const uint32_t*>(x.data_ptr());
  std::atomic<bool> bad{false};
  at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t a, int64_t b) {
    uint32_t m = 0;
    for (int64_t i = a; i < b; ++i) m = std::max(m, p[i] & 0x7fffffffu);
    if (m >= 0x7f800000u) bad = true;
  });
  return !bad;
}

// Whether every floating parameter and buffer of the source is finite: weights with NaN or
// infinity would meet the same fused steps.
static bool finite_state(const std::vector<StateEntry>& state) {
  for (const StateEntry& e : state) {
    const at::Tensor& t = *e.tensor;
    if (t.scalar_type() == at::kFloat ? !all_finite(t) : at::isFloatingType(t.scalar_type()) && !at::isfinite(t).all().item<bool>())
      return false;
  }
  return true;
}

struct PreparedModule::Impl {
  std::shared_ptr<Module> source;
  std::vector<StateEntry> state;  // the source's, to see changes
  std::vector<std::pair<const void*, uint32_t>> stamp;
  bool planned = false;   // the plan runs float32 CPU inputs now (judge())
  bool covered = false;   // the plan covers the source's modules (false for good once it refused one)
  bool laid_out = false;  // `layout` was chosen
  Layout layout{false, 0};
  int64_t in_channels = -1;
  // (stages?, c, h, w, cl, parts) -> identical plans, one per worker thread of a batch
  using Key = std::tuple<int, int64_t, int64_t, int64_t, bool, int>;
  struct Entry {
    bool refused = false;  // oneDNN or the plan refused this size: the source runs it, unplanned
    std::vector<std::unique_ptr<Plan>> plans;
  };
  std::map<Key, Entry> plans;  // a bounded cache of input sizes
  std::vector<dnnl::stream> streams;  // one per worker
  std::vector<RunContext> contexts;   // one per worker, refilled by each call

  std::vector<std::pair<const void*, uint32_t>> current() const {
    std::vector<std::pair<const void*, uint32_t>> v;
    v.reserve(state.size());
    for (const StateEntry& e : state) v.emplace_back(e.tensor->data_ptr(), e.tensor->_version());
    return v;
  }

  // Drops the plans when the source's weights changed since they were made (a comparison in
  // place: a steady-state call allocates nothing here).
  void refresh() {
    bool same = stamp.size() == state.size();
    for (size_t i = 0; same && i < state.size(); ++i)
      same = stamp[i].first == state[i].tensor->data_ptr() && stamp[i].second == state[i].tensor->_version();
    if (!same) {
      plans.clear();
      planned = false;
      judge();  // before the stamp: if it throws, the next call judges again
      stamp = current();
    }
  }

  // Whether the plan runs the source as it is now: float32 parameters on the CPU (after a
  // to(FLOAT64) or to a GPU the source computes), with finite values.
  void judge() {
    at::TensorOptions o = source->param_options();
    const bool cpu_f32 = o.has_dtype() && c10::typeMetaToScalarType(o.dtype()) == at::kFloat &&
                         (!o.has_device() || o.device().is_cpu());
    planned = covered && cpu_f32 && in_channels > 0 && finite_state(state);
    if (planned && !laid_out) {
      layout = choose_layout(*source);
      laid_out = true;
    }
  }

  static bool channels_last(const at::Tensor& x) {
    return x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
  }
  // The parts a plan is split into: one per thread in the blocked layout (where a channel
  // range is a tensor of its own). A batch of one runs its parts on all threads at once; a
  // larger batch runs image-parallel, each worker thread running every part of its plans, so
  // that both share one set of plans and weights.
  static int64_t threads() { return at::in_parallel_region() ? 1 : at::get_num_threads(); }
  Key key_of(bool stages, const at::Tensor& x) const {
    const int parts = threads() > 1 && layout.blocked ? static_cast<int>(threads()) : 1;
    return std::make_tuple(stages ? 1 : 0, x.size(1), x.size(2), x.size(3), channels_last(x), parts);
  }

  // The plan's outputs for x, or false when the source must compute them: the module is not
  // covered (from now on, for every size) or this input size is refused (remembered, so that
  // it is not planned again on every call).
  bool try_run(const at::Tensor& x, bool stages, std::vector<at::Tensor>& outs) {
    if (!takes(x) || !all_finite(x)) return false;
    at::internal::lazy_init_num_threads();
    const Key key = key_of(stages, x);
    auto known = plans.find(key);
    if (known != plans.end() && known->second.refused) return false;
    c10::NoGradGuard no_grad;
    try {
      outs = run(x, stages, key);
      return true;
    } catch (const Unsupported&) {
      covered = planned = false;
    } catch (const SizeRefused&) {
      refuse(key);
    } catch (const dnnl::error&) {
      refuse(key);  // say, an input smaller than a kernel: the source reports it
    }
    return false;
  }

  void refuse(const Key& key) {
    Entry& e = entry(key);
    e.plans.clear();
    e.refused = true;
  }

  Entry& entry(const Key& key) {
    auto it = plans.find(key);
    if (it == plans.end()) {
      if (plans.size() >= 8) plans.clear();  // a bounded cache of input sizes
      it = plans.emplace(key, Entry{}).first;
    }
    return it->second;
  }

  // `count` identical plans for inputs like x (each worker thread of a batch runs its own),
  // each split into the key's parts, and a stream for each thread.
  std::vector<std::unique_ptr<Plan>>& plans_for(const Key& key, bool stages, const at::Tensor& x, bool cl,
                                                size_t count) {
    const int parts = std::get<5>(key);
    auto& v = entry(key).plans;
    while (v.size() < count) v.push_back(make_plan(stages, x, cl, v.empty() ? nullptr : v.front().get(), parts));
    while (streams.size() < std::max(count, static_cast<size_t>(parts))) streams.emplace_back(engine());
    return v;
  }

  std::unique_ptr<Plan> make_plan(bool stages, const at::Tensor& x, bool cl, const Plan* twin, int parts) {
    CpuCacheBypass once;  // folding the weights frees one-off temporaries: back to the system
    auto p = std::make_unique<Plan>();
    p->twin = twin;
    p->parts = parts;
    p->layout = layout;
    p->in_c = x.size(1);
    p->in_h = x.size(2);
    p->in_w = x.size(3);
    p->in_channels_last = cl;
    Builder b(*p);
    Value in{kInput, 0, x.size(1), x.size(2), x.size(3)};
    if (auto* net = dynamic_cast<VoVNet*>(source.get())) {
      Value h = b.chain(net->stem(), in, b.input_want(net->stages()));
      const auto& st = net->stages();
      for (size_t i = 0; i < st.size(); ++i) {
        const bool last = i + 1 == st.size();
        h = b.build(*st[i], h, last ? nullptr : b.input_want({st.begin() + static_cast<std::ptrdiff_t>(i) + 1, st.end()}));
        if (stages) h = b.tap(h);
      }
      if (!stages) b.classifier(net->head() ? net->head()->fc() : nullptr, h);
    } else {
      Value out;
      if (auto* s = dynamic_cast<Sequential*>(source.get()))
        out = b.chain(s->items(), in, nullptr);
      else
        out = b.build(*source, in, nullptr);
      if (p->results.empty()) b.tap(out);
    }
    p->allocate();
    return p;
  }

  std::vector<at::Tensor> run(const at::Tensor& x_in, bool stages, const Key& key) {
    at::Tensor x = x_in;
    const bool cl = channels_last(x);
    if (!cl) x = x.contiguous();
    const int64_t n = x.size(0);
    // A batch of two or more images runs image-parallel: each worker thread takes a contiguous
    // run of images through its own plan with single-threaded primitives, so the threads never
    // meet between layers (with threads that sleep while waiting, as OMP_WAIT_POLICY=passive
    // makes them, a meeting per layer costs more than the layer's own parallel speed-up).
    const int parts = std::get<5>(key);
    const bool split = parts > 1 && n == 1;
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads(), n));
    auto& ps = plans_for(key, stages, x, cl, static_cast<size_t>(workers));
    std::vector<at::Tensor> outs;
    for (const Result& r : ps[0]->results)
      outs.push_back(r.map ? at::empty({n, r.c, r.h, r.w}, at::TensorOptions(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast))
                           : at::empty({n, r.c}, at::kFloat));
    const int64_t image = x.size(1) * x.size(2) * x.size(3);
    const float* xp = x.data_ptr<float>();
    const int64_t chunk = (n + workers - 1) / workers;
    // One context per thread, ready before any thread starts (nothing in a split plan's team
    // may fail before the meetings, or the others would wait for it); kept between calls.
    const size_t need = static_cast<size_t>(std::max<int64_t>(workers, parts));
    if (contexts.size() < need) contexts.resize(need);
    for (size_t t = 0; t < need; ++t) {
      contexts[t].stream = &streams[t];
      contexts[t].outputs.resize(outs.size());
    }
    // Thread `tid` of `team` runs plan w on the images of worker w (on all its parts when alone).
    auto run_images = [&](int64_t w, int tid, int team, Barrier& meet, std::atomic<bool>& failed,
                          std::exception_ptr& error) {
      Plan& p = *ps[static_cast<size_t>(w)];
      RunContext& ctx = contexts[static_cast<size_t>(split ? tid : w)];
      for (int64_t i = w * chunk; i < std::min(n, (w + 1) * chunk); ++i) {
        ctx.input = xp + i * image;
        for (size_t k = 0; k < outs.size(); ++k) {
          const Result& r = p.results[k];
          ctx.outputs[k] = outs[k].data_ptr<float>() + i * r.c * r.h * r.w;
        }
        p.run(ctx, tid, team, meet, failed, error);
      }
      try {
        ctx.stream->wait();
      } catch (...) {
        if (!failed.exchange(true)) error = std::current_exception();
      }
    };
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    if (split) {
      Barrier meet;
#pragma omp parallel num_threads(parts)
      run_images(0, omp_get_thread_num(), omp_get_num_threads(), meet, failed, error);
    } else if (workers == 1) {
      Barrier alone;
      run_images(0, 0, 1, alone, failed, error);
    } else {
      at::parallel_for(0, workers, 1, [&](int64_t w0, int64_t w1) {
        Barrier alone;
        for (int64_t w = w0; w < w1; ++w) run_images(w, 0, 1, alone, failed, error);
      });
    }
    if (error) std::rethrow_exception(error);
    return outs;
  }

  // Whether x goes through the plan; otherwise the source computes it (and reports bad
  // inputs with its own messages).
  bool takes(const at::Tensor& x) const {
    return planned && x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && x.size(0) > 0 &&
           x.size(1) == in_channels && !x.requires_grad();
  }

  // The source's own forward in evaluation mode, without autograd.
  template <typename F>
  auto fallback(F f) {
    c10::NoGradGuard no_grad;
    const bool was = source->training();
    if (was) source->set_training(false);
    struct Restore {
      Module& m;
      bool on;
      ~Restore() {
        if (on) m.set_training(true);
      }
    } restore{*source, was};
    return f();
  }
};

PreparedModule::PreparedModule(std::shared_ptr<Module> source) : impl_(std::make_unique<Impl>()) {
  if (source->training())
    fail("inference preparation needs a module in evaluation mode: call eval() first (BatchNorm then uses its "
         "running statistics, which the preparation folds into the convolutions)");
  impl_->source = source;
  source->collect_state("", impl_->state);
  impl_->stamp = impl_->current();
  impl_->in_channels = input_channels(*source);
  impl_->covered = impl_->in_channels > 0 && coverable(*source);
  impl_->judge();
  training_ = false;
}

PreparedModule::~PreparedModule() = default;

bool PreparedModule::planned() const {
  try {
    impl_->refresh();  // after the source moved to another dtype or device, no longer
  } catch (...) {
    // a question, not a call: the next forward reports what failed
  }
  return impl_->planned;
}
bool PreparedModule::is_vovnet() const { return dynamic_cast<VoVNet*>(impl_->source.get()) != nullptr; }

at::Tensor PreparedModule::forward(const at::Tensor& x) {
  impl_->refresh();
  std::vector<at::Tensor> outs;
  if (impl_->try_run(x, false, outs)) return outs.back();
  return impl_->fallback([&] { return impl_->source->forward(x); });
}

std::vector<at::Tensor> PreparedModule::forward_stages(const at::Tensor& x) {
  auto* net = dynamic_cast<VoVNet*>(impl_->source.get());
  if (net == nullptr) fail("module is not a VoVNet");
  impl_->refresh();
  std::vector<at::Tensor> outs;
  if (impl_->try_run(x, true, outs)) return outs;
  return impl_->fallback([&] { return net->forward_stages(x); });
}

}  // namespace sekit

using namespace sekit;

extern "C" {

sk_error* sk_module_prepare_inference(const sk_module* m, sk_module** out) {
  SK_GUARD_BEGIN
  sk_module* src = module_arg(m);
  out_arg(out, "out");
  if (dynamic_cast<PreparedModule*>(src->module.get())) fail("the module is already prepared for inference");
  *out = wrap_module(std::make_shared<PreparedModule>(src->module));
  SK_GUARD_END
}

int32_t sk_module_inference_plan(const sk_module* m) {
  if (m == nullptr || !m->module) return -1;
  auto* p = dynamic_cast<PreparedModule*>(m->module.get());
  if (p == nullptr) return -1;
  return p->planned() ? 1 : 0;
}

}  // extern "C"

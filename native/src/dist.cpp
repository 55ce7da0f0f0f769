// Data-parallel training on PyTorch's c10d: a Gloo process group joined with torchrun's
// rendezvous (a TCPStore on rank 0), collectives with a timeout, and DistributedDataParallel's
// gradient buckets all-reduced from autograd hooks while backward runs.
#include "autograd_node.hpp"
#include "module.hpp"

#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <mutex>
#include <thread>

namespace sekit {
namespace dist {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr Millis kHeartbeat{500};
// The largest group: Gloo connects every pair of ranks (and every rank beats its heartbeat
// into rank 0's store), which stops scaling long before this. ProcessGroup.MAX_WORLD_SIZE.
constexpr int32_t kMaxWorldSize = 4096;
// The longest timeout: c10d and Gloo add it to clock readings and pass it on as an int of
// milliseconds in places. ProcessGroup.MAX_TIMEOUT.
constexpr int64_t kMaxTimeoutMs = 2147483647;

std::string heartbeat_key(int rank) { return "sekit/heartbeat/" + std::to_string(rank); }

// libtorch 2.4 and later serve the store with libuv by default; sekit keeps 1.13's socket
// server on every libtorch.
void no_libuv(c10d::TCPStoreOptions& o) {
#if SEKIT_TORCH_AT_LEAST(2, 4)
  o.useLibUV = false;
#else
  (void)o;
#endif
}

c10::intrusive_ptr<c10d::TCPStore> store_client(const std::string& host, int port, Millis timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = false;
  o.waitWorkers = false;
  o.timeout = timeout;
  no_libuv(o);
  return c10::make_intrusive<c10d::TCPStore>(host, o);
}

// Every rank bumps its counter in the store every 500 ms from a thread of its own (with a
// store connection of its own), so that after a failed collective the survivors can tell
// which ranks stopped.
class Heartbeat {
 public:
  Heartbeat(std::string host, int port, int rank, Millis timeout)
      : host_(std::move(host)), port_(port), rank_(rank), timeout_(timeout) {
    thread_ = std::thread([this] { run(); });
  }
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void run() noexcept {
    try {
      auto store = store_client(host_, port_, std::min(timeout_, Millis(5000)));
      const std::string key = heartbeat_key(rank_);
      std::unique_lock<std::mutex> l(mu_);
      while (!stop_) {
        l.unlock();
        store->add(key, 1);
        l.lock();
        cv_.wait_for(l, kHeartbeat, [this] { return stop_; });
      }
    } catch (...) {
      // The store is gone (rank 0 ended or was lost): nothing more to report to.
    }
  }

  std::string host_;
  int port_, rank_;
  Millis timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

// The shared state of a group: the handle and every DDP on it hold a reference.
struct Group {
  std::string master_addr;
  int port = 0, rank = 0, size = 0;
  Millis timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::unique_ptr<Heartbeat> heartbeat;

  // The ranks whose heartbeat does not move for 3.2 beats, as a sentence.
  std::string lost_ranks() const noexcept {
    try {
      c10::intrusive_ptr<c10d::TCPStore> s;
      try {
        s = store_client(master_addr, port, std::min(timeout, Millis(3000)));
      } catch (...) {
        return rank == 0 ? "the store on this rank does not answer"
                         : "rank 0 is lost (its store at " + master_addr + ":" + std::to_string(port) +
                               " does not answer)";
      }
      std::vector<int64_t> before(size);
      for (int r = 0; r < size; ++r) before[r] = s->add(heartbeat_key(r), 0);
      std::this_thread::sleep_for(kHeartbeat * 32 / 10);
      std::vector<int> lost;
      for (int r = 0; r < size; ++r)
        if (r != rank && s->add(heartbeat_key(r), 0) == before[r]) lost.push_back(r);
      if (lost.empty()) return "every rank's heartbeat is alive: a rank is stuck or ran other collectives";
      std::ostringstream os;
      os << (lost.size() == 1 ? "rank " : "ranks ");
      for (size_t i = 0; i < lost.size(); ++i) os << (i ? ", " : "") << lost[i];
      os << (lost.size() == 1 ? " is" : " are") << " lost (heartbeat stopped)";
      return os.str();
    } catch (...) {
      return "rank 0 is lost (its store stopped answering)";
    }
  }

  // Waits until w no longer runs, whatever its outcome. A wait that timed out does not stop
  // the operation: Gloo's threads may still write its tensors, which the caller may free once
  // we return. Gloo ends the operation itself at the same timeout (every collective gets
  // o.timeout), so this wait is short.
  static void drain(const c10::intrusive_ptr<c10d::Work>& w) noexcept {
    if (!w) return;
    try {
      if (!w->isCompleted()) w->wait();
    } catch (...) {
      // its failure was, or will be, reported by the wait that gave up on it
    }
  }

  // Waits for w; a failure or timeout becomes a DistributedError naming the lost ranks.
  void wait(const c10::intrusive_ptr<c10d::Work>& w, const char* what) const {
    const auto t0 = Clock::now();
    std::string cause;
    try {
      w->wait(timeout);
      return;
    } catch (const std::exception& e) {
      cause = plain_message(e);
    }
    drain(w);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::ostringstream os;
    os << what << " failed on rank " << rank << " of " << size << " after " << std::fixed << std::setprecision(3) << secs
       << " s: " << lost_ranks()
       << " (Gloo: " << cause << ")";
    throw DistributedError(os.str());
  }
};

}  // namespace dist
}  // namespace sekit

struct sk_process_group {
  std::shared_ptr<sekit::dist::Group> group;
};

namespace sekit {
namespace dist {

Group& group_arg(const sk_process_group* pg) {
  if (pg == nullptr || !pg->group) fail("process group must not be NULL");
  return *pg->group;
}

const at::Tensor& collective_tensor(const sk_tensor* t, const char* name) {
  const at::Tensor& x = tensor_arg(t, name);
  if (!x.device().is_cpu())
    fail(name, " is on ", x.device(), ": Gloo reduces CPU tensors (CUDA needs NCCL, which this build lacks)");
  if (!x.is_contiguous()) fail(name, " must be contiguous for a collective");
  return x;
}

// ------------------------------------------------------------------ cross-rank checks

// Gloo moves bytes: a collective whose tensors differ in size between ranks overruns its
// buffers on the transport thread, which aborts the process (as PyTorch's debug mode, we
// compare first). Before each user collective every rank all-gathers a fixed-size
// descriptor of its call (which collective, its argument, dtype, rank and shape), so that a
// mismatch ends in the same DistributedError on every rank before any data moves.
enum Kind : int64_t { kAllReduce = 1, kBroadcast, kAllGather, kBarrier, kDdp };
constexpr int64_t kMagic = 0x736b6974;  // "skit": a descriptor, not data of another call
constexpr int kDims = 8;                 // dimensions shown in full in a message
constexpr int kDescLen = 7 + kDims;      // magic, kind, arg, dtype, ndim, numel, hash, dims

const char* kind_name(int64_t k) {
  switch (k) {
    case kAllReduce: return "all_reduce";
    case kBroadcast: return "broadcast";
    case kAllGather: return "all_gather";
    case kBarrier: return "barrier";
    case kDdp: return "DistributedDataParallel";
    default: return "an unknown collective";
  }
}

const char* reduce_name(int64_t op) {
  switch (op) {
    case SK_REDUCE_SUM: return "SUM";
    case SK_REDUCE_AVG: return "AVG";
    case SK_REDUCE_MIN: return "MIN";
    case SK_REDUCE_MAX: return "MAX";
    default: return "?";
  }
}

uint64_t fnv(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}
constexpr uint64_t kFnvSeed = 1469598103934665603ULL;

uint64_t tensor_hash(uint64_t h, const at::Tensor& x) {
  const int64_t st = static_cast<int64_t>(x.scalar_type()), nd = x.dim();
  h = fnv(h, &st, sizeof st);
  h = fnv(h, &nd, sizeof nd);
  return fnv(h, x.sizes().data(), sizeof(int64_t) * x.sizes().size());
}

at::Tensor descriptor(int64_t kind, int64_t arg, const at::Tensor* x) {
  at::Tensor d = at::full({kDescLen}, -1, at::kLong);
  int64_t* p = d.data_ptr<int64_t>();
  p[0] = kMagic;
  p[1] = kind;
  p[2] = arg;
  if (x != nullptr) {
    p[3] = static_cast<int64_t>(x->scalar_type());
    p[4] = x->dim();
    p[5] = x->numel();
    p[6] = static_cast<int64_t>(tensor_hash(kFnvSeed, *x));
    for (int64_t i = 0; i < std::min<int64_t>(x->dim(), kDims); ++i) p[7 + i] = x->size(i);
  }
  return d;
}

// PyTorch's name of a dtype ("float32"), as users write it.
std::string dtype_name(int64_t st) {
  if (st < 0 || st >= static_cast<int64_t>(c10::ScalarType::NumOptions)) return "dtype " + std::to_string(st);
  switch (static_cast<c10::ScalarType>(st)) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(static_cast<c10::ScalarType>(st));
  }
}

// "float32 [2, 3]" from a descriptor row.
std::string described(const int64_t* p) {
  std::ostringstream os;
  os << dtype_name(p[3]) << " [";
  for (int64_t i = 0; i < std::min<int64_t>(p[4], kDims); ++i) os << (i ? ", " : "") << p[7 + i];
  if (p[4] > kDims) os << ", ...";
  os << "]";
  return os.str();
}

at::Tensor all_gather(Group& g, const at::Tensor& x, const char* what);

// Every rank's descriptor of this call; throws the same DistributedError on every rank when
// they differ (every rank compares each rank with rank 0).
void check_same(Group& g, int64_t kind, int64_t arg, const at::Tensor* x) {
  if (g.size == 1) return;
  at::Tensor all = all_gather(g, descriptor(kind, arg, x), kind_name(kind));
  const int64_t* p0 = all.data_ptr<int64_t>();
  for (int r = 1; r < g.size; ++r) {
    const int64_t* p = p0 + static_cast<int64_t>(r) * kDescLen;
    if (std::equal(p, p + kDescLen, p0)) continue;
    std::ostringstream os;
    os << kind_name(kind) << " on rank " << g.rank << " of " << g.size << ": the ranks' calls differ, ";
    if (p[0] != kMagic || p0[0] != kMagic || p[1] != p0[1]) {
      os << "rank 0 called " << kind_name(p0[1]) << ", rank " << r << " " << kind_name(p[1])
         << "; every rank must call the same collectives in the same order";
    } else if (kind == kAllReduce && p[2] != p0[2]) {
      os << "rank 0 reduces with " << reduce_name(p0[2]) << ", rank " << r << " with " << reduce_name(p[2])
         << "; every rank must pass the same ReduceOp";
    } else if (kind == kBroadcast && p[2] != p0[2]) {
      os << "rank 0 broadcasts from root " << p0[2] << ", rank " << r << " from root " << p[2]
         << "; every rank must pass the same root";
    } else {
      os << "rank 0 has a tensor of " << described(p0) << ", rank " << r << " one of " << described(p)
         << "; every rank must pass a tensor of the same dtype and shape";
    }
    os << " (nothing was sent)";
    throw DistributedError(os.str());
  }
}

// DistributedDataParallel: every rank must wrap the same model (the same parameters and
// buffers in the same order, of the same dtypes and shapes, frozen alike), or the broadcast
// of rank 0's state and each bucket's all-reduce would move buffers of different sizes.
// One descriptor of the whole state, and only when they differ one hash per entry, to name
// the first entry that differs.
void check_same_model(Group& g, const std::vector<StateEntry>& state) {
  if (g.size == 1) return;
  std::vector<int64_t> hashes;
  int64_t trainable = 0, frozen = 0, buffers = 0, values = 0;
  auto role = [](const StateEntry& e) -> int64_t {
    return !e.is_parameter ? 2 : e.tensor->requires_grad() ? 0 : 1;
  };
  uint64_t whole = kFnvSeed;
  for (const StateEntry& e : state) {
    const int64_t k = role(e);
    (k == 0 ? trainable : k == 1 ? frozen : buffers)++;
    values += e.tensor->numel();
    uint64_t h = fnv(kFnvSeed, e.name.data(), e.name.size());
    h = fnv(h, &k, sizeof k);
    h = tensor_hash(h, *e.tensor);
    hashes.push_back(static_cast<int64_t>(h));
    whole = fnv(whole, &h, sizeof h);
  }
  at::Tensor d = at::full({kDescLen}, -1, at::kLong);
  int64_t* q = d.data_ptr<int64_t>();
  q[0] = kMagic;
  q[1] = kDdp;
  q[2] = static_cast<int64_t>(state.size());
  q[3] = trainable;
  q[4] = frozen;
  q[5] = buffers;
  q[6] = static_cast<int64_t>(whole);
  q[7] = values;
  at::Tensor all = all_gather(g, d, kind_name(kDdp));
  const int64_t* p0 = all.data_ptr<int64_t>();
  int differs = 0;
  for (int r = 1; r < g.size && differs == 0; ++r)
    if (!std::equal(p0 + r * kDescLen, p0 + (r + 1) * kDescLen, p0)) differs = r;
  if (differs == 0) return;
  const int64_t* p = p0 + static_cast<int64_t>(differs) * kDescLen;
  std::ostringstream os;
  os << "DistributedDataParallel on rank " << g.rank << " of " << g.size << ": the ranks' models differ, ";
  if (p[0] != kMagic || p[1] != kDdp) {
    os << "rank 0 wraps a model, rank " << differs << " called " << kind_name(p[1])
       << "; every rank must call the same collectives in the same order";
  } else if (!std::equal(p + 2, p + 6, p0 + 2) || p[7] != p0[7]) {
    auto counts = [&os](const int64_t* x) {
      os << x[3] << " trainable and " << x[4] << " frozen parameters and " << x[5] << " buffers (" << x[7]
         << " values)";
    };
    os << "rank 0 has ";
    counts(p0);
    os << ", rank " << differs << " ";
    counts(p);
    os << "; every rank must wrap the same model with the same parameters frozen";
  } else {
    // The same counts: compare entry by entry (every rank has as many, so the gather fits).
    at::Tensor mine = at::from_blob(hashes.data(), {static_cast<int64_t>(hashes.size())}, at::kLong).clone();
    at::Tensor each = all_gather(g, mine, kind_name(kDdp));
    const int64_t n = static_cast<int64_t>(hashes.size());
    const int64_t* h0 = each.data_ptr<int64_t>();
    const int64_t* hr = h0 + static_cast<int64_t>(differs) * n;
    int64_t i = 0;
    while (i < n && h0[i] == hr[i]) ++i;
    os << "rank 0 and rank " << differs << " have the same number of parameters and buffers but they differ in "
       << "name, dtype, shape or being frozen";
    if (i < n) {
      const StateEntry& e = state[static_cast<size_t>(i)];
      static const char* roles[] = {"trainable parameter", "frozen parameter", "buffer"};
      os << " from entry " << i << " on (on this rank: " << roles[role(e)] << " " << e.name << ", "
         << dtype_name(static_cast<int64_t>(e.tensor->scalar_type())) << " " << shape_str(e.tensor->sizes()) << ")";
    }
    os << "; every rank must wrap the same model";
  }
  os << " (nothing was sent)";
  throw DistributedError(os.str());
}

void reduce_in_place(Group& g, at::Tensor x, int32_t op, const char* what = "all_reduce") {
  c10d::AllreduceOptions o;
  o.timeout = g.timeout;
  switch (op) {
    case SK_REDUCE_SUM:
    case SK_REDUCE_AVG: o.reduceOp = c10d::ReduceOp::SUM; break;
    case SK_REDUCE_MIN: o.reduceOp = c10d::ReduceOp::MIN; break;
    case SK_REDUCE_MAX: o.reduceOp = c10d::ReduceOp::MAX; break;
    default: fail("unknown reduction ", op, " (expected SK_REDUCE_SUM, _AVG, _MIN or _MAX)");
  }
  if (op == SK_REDUCE_AVG && !at::isFloatingType(x.scalar_type()))
    fail("an average needs a floating tensor, got ", c10::toString(x.scalar_type()));
  std::vector<at::Tensor> v{x};
  g.wait(g.pg->allreduce(v, o), what);
  if (op == SK_REDUCE_AVG) x.div_(g.size);
}

// Gloo reduces CPU tensors only: every parameter and buffer of m must be there.
void require_cpu_module(const sk_module& m, const char* what) {
  for (auto& e : m.state)
    if (!e.tensor->device().is_cpu())
      fail(what, " over Gloo needs the module on the CPU; ", e.name, " is on ", e.tensor->device(),
           " (CUDA needs NCCL, which this build lacks)");
}

// [world_size, *x.shape]: row r is rank r's x (contiguous, CPU).
at::Tensor all_gather(Group& g, const at::Tensor& x, const char* what) {
  std::vector<int64_t> shape{g.size};
  for (auto s : x.sizes()) shape.push_back(s);
  at::Tensor result = at::empty(shape, x.options().requires_grad(false));
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < g.size; ++r) outputs[0].push_back(result.select(0, r));
  std::vector<at::Tensor> inputs{x};
  c10d::AllgatherOptions o;
  o.timeout = g.timeout;
  g.wait(g.pg->allgather(outputs, inputs, o), what);
  return result;
}

// x = rank root's x, in place.
void broadcast(Group& g, const at::Tensor& x, int root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = g.timeout;
  std::vector<at::Tensor> v{x};
  g.wait(g.pg->broadcast(v, o), "broadcast");
}

// Sets every tensor of `ts` to rank root's, one broadcast per dtype (flattened together).
// `flats` (optional) keeps the flat buffer of each dtype between calls, so that a broadcast
// repeated every step (DDP's buffers) allocates nothing.
void broadcast_coalesced(Group& g, const std::vector<at::Tensor>& ts, int root,
                         std::map<at::ScalarType, at::Tensor>* flats = nullptr) {
  c10::NoGradGuard no_grad;
  std::vector<at::ScalarType> kinds;
  for (auto& t : ts)
    if (std::find(kinds.begin(), kinds.end(), t.scalar_type()) == kinds.end()) kinds.push_back(t.scalar_type());
  for (auto st : kinds) {
    std::vector<const at::Tensor*> which;
    int64_t total = 0;
    for (auto& t : ts)
      if (t.scalar_type() == st) {
        which.push_back(&t);
        total += t.numel();
      }
    at::Tensor all;
    if (flats != nullptr) {
      at::Tensor& f = (*flats)[st];
      if (!f.defined() || f.numel() != total) f = at::empty({total}, which.front()->options().requires_grad(false));
      all = f;
    } else {
      all = at::empty({total}, which.front()->options().requires_grad(false));
    }
    // Only the root's values go in, and only the others take the result out.
    const bool is_root = g.rank == root;
    int64_t off = 0;
    if (is_root)
      for (auto* t : which) {
        all.narrow(0, off, t->numel()).view(t->sizes()).copy_(*t);
        off += t->numel();
      }
    broadcast(g, all, root);
    if (is_root) continue;
    off = 0;
    for (auto* t : which) {
      const int64_t n = t->numel();
      const_cast<at::Tensor*>(t)->copy_(all.narrow(0, off, n).view(t->sizes()));
      off += n;
    }
  }
}

// ------------------------------------------------------------------ SyncBatchNorm

// v ([C]) as [1,C,1,...] in like's dtype, to broadcast over like ([N,C,...]).
at::Tensor per_channel(const at::Tensor& v, const at::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[1] = v.numel();
  return v.to(like.scalar_type()).view(shape);
}

// The backward of SyncBatchNorm's training forward (PyTorch's SyncBatchNorm.backward):
// the per-channel sums of dy and dy*(x-mean) are all-reduced so that every rank's input
// gradient sees the whole batch; the weight and bias gradients stay local (DDP averages them).
struct SyncBatchNormBackward : torch::autograd::Node {
  std::shared_ptr<Group> group;
  torch::autograd::SavedVariable x_, weight_;
  at::Tensor mean, var;  // float64, [C], of the whole batch
  double eps = 0;
  double total = 0;  // samples per channel over all ranks

  std::string name() const override { return "SyncBatchNormBackward"; }
  void release_variables() override {
    x_.reset_data();
    weight_.reset_data();
  }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    c10::NoGradGuard no_grad;
    at::Tensor x = x_.unpack();
    at::Tensor dy = grads[0].defined() ? grads[0] : at::zeros_like(x);
    const int64_t c = mean.numel();
    // ATen's eval-mode BatchNorm backward with the whole batch's mean and variance gives this
    // rank's sum(dy*(x-mean))*invstd and sum(dy) in one pass over x and dy.
    auto local = at::native_batch_norm_backward(dy, x, c10::nullopt, mean.to(x.scalar_type()),
                                                var.to(x.scalar_type()), c10::nullopt, c10::nullopt,
                                                /*train=*/false, eps, {false, true, true});
    const at::Tensor& grad_weight = std::get<1>(local);
    const at::Tensor& grad_bias = std::get<2>(local);
    at::Tensor invstd = (var + eps).rsqrt();
    // Every rank takes part in the all-reduce, whatever outputs it needs.
    at::Tensor sums = at::cat({grad_bias.to(at::kDouble), grad_weight.to(at::kDouble) / invstd});
    reduce_in_place(*group, sums, SK_REDUCE_SUM, "the gradient all_reduce of SyncBatchNorm");
    torch::autograd::variable_list out(3);
    if (task_should_compute_output(0)) {
      at::Tensor mean_dy = sums.narrow(0, 0, c) / total;
      at::Tensor mean_dy_xmu = sums.narrow(0, c, c) / total;
      // dx = invstd*w*(dy - mean(dy) - (x-mean)*invstd^2*mean(dy*(x-mean))) = a*dy + b*x + k
      at::Tensor a = invstd * weight_.unpack().to(at::kDouble);
      at::Tensor b = -a * invstd * invstd * mean_dy_xmu;
      at::Tensor k = -a * mean_dy - b * mean;
      at::Tensor dx = at::empty_like(x);
      at::addcmul_out(dx, per_channel(k, x), dy, per_channel(a, x));
      dx.addcmul_(x, per_channel(b, x));
      out[0] = dx;
    }
    if (task_should_compute_output(1)) out[1] = grad_weight;
    if (task_should_compute_output(2)) out[2] = grad_bias;
    return out;
  }
};

// PyTorch's SyncBatchNorm forward: each rank's mean and (biased) variance with its count are
// gathered and combined in float64 (Chan's parallel variance), normalisation uses the
// combined ones, and the running statistics move with them (the variance unbiased), so every
// rank's running statistics are the same.
class GroupBatchNormSync : public BatchNormSync {
 public:
  explicit GroupBatchNormSync(std::shared_ptr<Group> g) : group_(std::move(g)) {}

  at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& running_mean,
                     at::Tensor& running_var, double momentum, double eps) override {
    if (!x.device().is_cpu())
      fail("SyncBatchNorm over Gloo needs CPU tensors; the input is on ", x.device(),
           " (CUDA needs NCCL, which this build lacks)");
    const bool record = c10::GradMode::is_enabled() &&
                        (x.requires_grad() || weight.requires_grad() || bias.requires_grad());
    const int64_t c = x.size(1);
    const int64_t n = c > 0 ? x.numel() / c : 0;
    at::Tensor xd = x.detach();
    at::Tensor local = at::zeros({2 * c + 1}, at::kDouble);
    {
      c10::NoGradGuard no_grad;
      if (n > 0) {  // ATen's BatchNorm statistics kernel: this rank's mean and biased variance
        auto mv = at::batch_norm_update_stats(xd, c10::nullopt, c10::nullopt, momentum);
        local.narrow(0, 0, c).copy_(std::get<0>(mv));
        local.narrow(0, c, c).copy_(std::get<1>(mv));
      }
      local[2 * c] = static_cast<double>(n);
    }
    at::Tensor all = all_gather(*group_, local, "the statistics all_gather of SyncBatchNorm");
    c10::NoGradGuard no_grad;
    at::Tensor counts = all.select(1, 2 * c).unsqueeze(1);  // [W,1]
    const double total = counts.sum().item<double>();
    if (total <= 1)
      fail("SyncBatchNorm expected more than 1 value per channel when training, got ",
           static_cast<int64_t>(total), " over all ranks (input of shape ", shape_str(x.sizes()), " on this rank)");
    at::Tensor means = all.narrow(1, 0, c), vars = all.narrow(1, c, c);
    at::Tensor mean = (counts * means).sum(0) / total;
    at::Tensor var = (counts * (vars + (means - mean).square())).sum(0) / total;
    at::Tensor invstd = (var + eps).rsqrt();
    running_mean.copy_(running_mean.to(at::kDouble) * (1 - momentum) + mean * momentum);
    running_var.copy_(running_var.to(at::kDouble) * (1 - momentum) + var * (total / (total - 1)) * momentum);
    at::Tensor scale = weight.detach().to(at::kDouble) * invstd;
    at::Tensor shift = bias.detach().to(at::kDouble) - mean * scale;
    at::Tensor out = at::empty_like(xd);
    at::addcmul_out(out, per_channel(shift, xd), xd, per_channel(scale, xd));
    if (record) {
      auto node = new_node<SyncBatchNormBackward>();
      node->group = group_;
      node->x_ = torch::autograd::SavedVariable(x, false);
      node->weight_ = torch::autograd::SavedVariable(weight, false);
      node->mean = mean;
      node->var = var;
      node->eps = eps;
      node->total = total;
      node->set_next_edges(torch::autograd::collect_next_edges(x, weight, bias));
      torch::autograd::set_history(out, node);
    }
    return out;
  }

 private:
  std::shared_ptr<Group> group_;
};

// ------------------------------------------------------------------ DDP

struct Bucket {
  std::vector<size_t> params;  // indices into Ddp::params
  at::Tensor flat;
  size_t pending = 0;
  bool launched = false;
  c10::intrusive_ptr<c10d::Work> work;
};

struct Ddp : std::enable_shared_from_this<Ddp> {
  std::shared_ptr<Group> group;
  std::shared_ptr<Module> module;  // keeps the parameters alive
  std::vector<at::Tensor> params, buffers;
  std::vector<at::Tensor> state;  // params, frozen parameters and buffers: what rank 0 broadcasts
  std::map<at::ScalarType, at::Tensor> buffer_flats;  // broadcast_coalesced's, reused each step
  std::vector<at::Tensor> inv_world;  // per bucket: 1 / world_size in its dtype
  std::vector<std::string> names;
  std::vector<size_t> bucket_of;
  std::vector<at::Tensor> views;  // each parameter's slice of its bucket, shaped as the parameter
  std::vector<Bucket> buckets;
  std::vector<NodePtr> accumulators;
  std::vector<uintptr_t> hook_keys;

  std::mutex mu;
  bool active = false;  // a backward is under way (its final callback is queued)
  std::vector<bool> ready;
  size_t next_launch = 0;
  int64_t reductions = 0;
  double wait_seconds = 0;


  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch++];
      c10d::AllreduceOptions o;
      o.timeout = group->timeout;
      std::vector<at::Tensor> v{b.flat};
      b.work = group->pg->allreduce(v, o);
      b.launched = true;
    }
  }

  void reset() {
    active = false;
    next_launch = 0;
    std::fill(ready.begin(), ready.end(), false);
    for (auto& b : buckets) {
      b.pending = b.params.size();
      b.launched = false;
      b.work.reset();
    }
  }

  // Called by the hook of parameter i after its gradient was accumulated.
  void on_gradient(size_t i) {
    std::lock_guard<std::mutex> l(mu);
    if (!active) {
      active = true;
      std::weak_ptr<Ddp> self = weak_from_this();
      torch::autograd::Engine::get_default_engine().queue_callback([self] {
        if (auto d = self.lock()) d->finish();
      });
    }
    if (ready[i]) return;
    ready[i] = true;
    c10::NoGradGuard no_grad;
    const at::Tensor& g = params[i].grad();
    at::Tensor& s = views[i];
    if (g.defined()) {
      at::mul_out(s, g, inv_world[bucket_of[i]]);  // as DDP: divided before the sum (one pass)
    } else {
      s.zero_();
    }
    --buckets[bucket_of[i]].pending;
    launch_ready();
  }

  // The end of backward: every bucket is reduced, the averages go into the gradients.
  void finish() {
    std::lock_guard<std::mutex> l(mu);
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i)
      if (!ready[i]) {
        ready[i] = true;
        views[i].zero_();
        --buckets[bucket_of[i]].pending;
      }
    launch_ready();
    const auto t0 = Clock::now();
    try {
      for (auto& b : buckets) group->wait(b.work, "the gradient all_reduce of DistributedDataParallel");
    } catch (...) {
      for (auto& b : buckets) Group::drain(b.work);  // none may still write b.flat
      reset();
      throw;
    }
    wait_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    ++reductions;
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& avg = views[i];
      if (params[i].grad().defined()) {
        params[i].mutable_grad().copy_(avg);
      } else {
        at::Tensor g = at::empty_like(params[i]);
        g.copy_(avg);
        params[i].mutable_grad() = g;
      }
    }
    reset();
  }

  void detach_hooks() noexcept {
    for (size_t i = 0; i < hook_keys.size(); ++i) accumulators[i]->del_post_hook(hook_keys[i]);
    accumulators.clear();
    hook_keys.clear();
  }
};

struct GradReadyHook : torch::autograd::FunctionPostHook {
  std::weak_ptr<Ddp> ddp;
  size_t index;
  GradReadyHook(std::weak_ptr<Ddp> d, size_t i) : ddp(std::move(d)), index(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (auto d = ddp.lock()) d->on_gradient(index);
    return outputs;
  }
};

}  // namespace dist
}  // namespace sekit

struct sk_ddp {
  std::shared_ptr<sekit::dist::Ddp> ddp;
  ~sk_ddp() {
    if (ddp) ddp->detach_hooks();
  }
};

using namespace sekit;
using namespace sekit::dist;

extern "C" {

sk_error* sk_process_group_new(const char* master_addr, int32_t master_port, int32_t rank, int32_t world_size,
                               int64_t timeout_ms, sk_process_group** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  if (master_addr == nullptr || *master_addr == '\0') fail("master_addr must be a host name or address");
  if (master_port < 1 || master_port > 65535) fail("master_port must be in [1, 65535], got ", master_port);
  if (world_size < 1 || world_size > kMaxWorldSize)
    fail("world_size must be in [1, ", kMaxWorldSize, "], got ", world_size);
  if (rank < 0 || rank >= world_size) fail("rank must be in [0, ", world_size, "), got ", rank);
  if (timeout_ms < 1 || timeout_ms > kMaxTimeoutMs)
    fail("timeout_ms must be in [1, ", kMaxTimeoutMs, "], got ", timeout_ms);
  auto g = std::make_shared<Group>();
  g->master_addr = master_addr;
  g->port = master_port;
  g->rank = rank;
  g->size = world_size;
  g->timeout = Millis(timeout_ms);
  const auto deadline = Clock::now() + g->timeout;
  auto left = [&deadline] {
    return std::max(Millis(1), std::chrono::duration_cast<Millis>(deadline - Clock::now()));
  };
  auto joining_failed = [&](const std::string& why) {
    std::ostringstream os;
    os << "rank " << rank << " of " << world_size << " could not join the process group at " << master_addr << ":"
       << master_port << " within " << timeout_ms << " ms: " << why;
    return DistributedError(os.str());
  };
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(master_port);
    so.isServer = rank == 0;
    so.waitWorkers = false;  // the meeting below waits, against one deadline
    so.timeout = g->timeout;
    no_libuv(so);
    g->store = c10::make_intrusive<c10d::TCPStore>(g->master_addr, so);
  } catch (const std::exception& e) {
    throw joining_failed(plain_message(e));
  }
  // The meeting, before Gloo connects every pair (whose waits add up, one per rank): rank 0
  // publishes its world size, every rank compares its own with it and counts itself in, and
  // the rank that completes the count (or one that found a mismatch) sets the outcome, which
  // every rank waits for until the deadline. A rank that found a mismatch knows the outcome
  // already; rank 0, which serves the store, stays (a second at most) until the others have
  // had it, so that a failed meeting is the same message on every rank.
  const std::string k_world = "sekit/join/world_size", k_count = "sekit/join/count", k_outcome = "sekit/join/outcome",
                    k_told = "sekit/join/told";
  auto text = [](const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); };
  auto bytes = [](const std::string& v) { return std::vector<uint8_t>(v.begin(), v.end()); };
  std::string outcome;
  try {
    if (rank == 0) g->store->set(k_world, bytes(std::to_string(world_size)));
    g->store->wait({k_world}, left());
    const std::string theirs = text(g->store->get(k_world));
    if (theirs != std::to_string(world_size)) {
      std::ostringstream os;
      os << "the ranks were started with different world sizes: rank 0 with WORLD_SIZE " << theirs << ", rank "
         << rank << " with " << world_size << "; start every rank with the same WORLD_SIZE";
      outcome = os.str();
      g->store->set(k_outcome, bytes(outcome));
      g->store->add(k_told, 1);
    } else {
      if (g->store->add(k_count, 1) == world_size) g->store->set(k_outcome, bytes("ok"));
      g->store->wait({k_outcome}, left());
      outcome = text(g->store->get(k_outcome));
      if (outcome != "ok" && rank != 0) {
        g->store->add(k_told, 1);
      } else if (outcome != "ok") {
        const auto until = Clock::now() + std::min<Millis>(Millis(1000), left());
        while (g->store->add(k_told, 0) < world_size - 1 && Clock::now() < until)
          std::this_thread::sleep_for(Millis(10));
      }
    }
  } catch (const std::exception& e) {
    std::string why = plain_message(e);
    try {
      why = "only " + std::to_string(g->store->add(k_count, 0)) + " of " + std::to_string(world_size) +
            " ranks joined (" + why + ")";
    } catch (...) {
    }
    throw joining_failed(why);
  }
  if (outcome != "ok") throw joining_failed(outcome);
  try {
    // Gloo's own timeout bounds every later operation too: the group's. Its pairwise waits
    // here are short, since every rank has joined.
    auto opts = c10d::ProcessGroupGloo::Options::create(g->timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && *ifname != '\0') {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (is_loopback(g->master_addr)) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    opts->threads = 2;
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world_size, opts);
  } catch (const std::exception& e) {
    throw joining_failed(plain_message(e));
  }
  g->heartbeat = std::make_unique<Heartbeat>(g->master_addr, master_port, rank, g->timeout);
  *out = new sk_process_group{std::move(g)};
  SK_GUARD_END
}

void sk_process_group_free(sk_process_group* pg) { delete pg; }

int32_t sk_process_group_rank(const sk_process_group* pg) { return pg && pg->group ? pg->group->rank : -1; }

int32_t sk_process_group_world_size(const sk_process_group* pg) {
  return pg && pg->group ? pg->group->size : -1;
}

sk_error* sk_all_reduce(sk_process_group* pg, sk_tensor* t, int32_t op) {
  SK_GUARD_BEGIN
  Group& g = group_arg(pg);
  const at::Tensor& x = collective_tensor(t, "t");
  c10::NoGradGuard no_grad;
  if (op < SK_REDUCE_SUM || op > SK_REDUCE_MAX)
    fail("unknown reduction ", op, " (expected SK_REDUCE_SUM, _AVG, _MIN or _MAX)");
  if (op == SK_REDUCE_AVG && !at::isFloatingType(x.scalar_type()))
    fail("an average needs a floating tensor, got ", c10::toString(x.scalar_type()));
  check_same(g, kAllReduce, op, &x);
  reduce_in_place(g, x, op);
  SK_GUARD_END
}

sk_error* sk_broadcast(sk_process_group* pg, sk_tensor* t, int32_t root) {
  SK_GUARD_BEGIN
  Group& g = group_arg(pg);
  const at::Tensor& x = collective_tensor(t, "t");
  if (root < 0 || root >= g.size) fail("root must be in [0, ", g.size, "), got ", root);
  c10::NoGradGuard no_grad;
  check_same(g, kBroadcast, root, &x);
  broadcast(g, x, root);
  SK_GUARD_END
}

sk_error* sk_barrier(sk_process_group* pg) {
  SK_GUARD_BEGIN
  Group& g = group_arg(pg);
  check_same(g, kBarrier, 0, nullptr);
  c10d::BarrierOptions o;
  o.timeout = g.timeout;
  g.wait(g.pg->barrier(o), "barrier");
  SK_GUARD_END
}

sk_error* sk_all_gather(sk_process_group* pg, const sk_tensor* t, sk_tensor** out) {
  SK_GUARD_BEGIN
  Group& g = group_arg(pg);
  const at::Tensor& x = collective_tensor(t, "t");
  out_arg(out, "out");
  c10::NoGradGuard no_grad;
  check_same(g, kAllGather, 0, &x);
  *out = new_handle(all_gather(g, x, "all_gather"));
  SK_GUARD_END
}

sk_error* sk_sync_batchnorm(sk_module* m, sk_process_group* pg, int32_t* converted) {
  SK_GUARD_BEGIN
  sk_module* mod = module_arg(m);
  std::shared_ptr<BatchNormSync> sync;
  if (pg != nullptr) {
    group_arg(pg);
    require_cpu_module(*mod, "SyncBatchNorm");
    sync = std::make_shared<GroupBatchNormSync>(pg->group);
  }
  int32_t n = 0;
  mod->module->visit([&](Module& x) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&x)) {
      bn->set_sync(sync);
      ++n;
    }
  });
  if (converted != nullptr) *converted = n;
  SK_GUARD_END
}

sk_error* sk_ddp_new(sk_process_group* pg, sk_module* m, int64_t bucket_bytes, sk_ddp** out) {
  SK_GUARD_BEGIN
  Group& g = group_arg(pg);
  sk_module* mod = module_arg(m);
  out_arg(out, "out");
  if (bucket_bytes < 1) fail("bucket_bytes must be >= 1, got ", bucket_bytes);
  auto d = std::make_shared<Ddp>();
  d->group = pg->group;
  d->module = mod->module;
  require_cpu_module(*mod, "DistributedDataParallel");
  std::vector<at::Tensor> frozen;  // parameters without requires_grad: broadcast, never reduced
  for (auto& e : mod->state) {
    if (e.is_parameter && e.tensor->requires_grad()) {
      d->params.push_back(*e.tensor);
      d->names.push_back(e.name);
    } else if (e.is_parameter) {
      frozen.push_back(*e.tensor);  // as PyTorch's DDP: rank 0's value, no gradient to reduce
    } else {
      d->buffers.push_back(*e.tensor);
    }
  }
  if (d->params.empty())
    fail(frozen.empty() ? "the module has no parameters to train" : "every parameter of the module is frozen");
  // Buckets in reverse parameter order (roughly the order backward produces gradients),
  // each of one dtype and at most bucket_bytes (a larger parameter gets one of its own).
  const size_t n = d->params.size();
  d->bucket_of.assign(n, 0);
  d->views.resize(n);
  std::vector<std::vector<size_t>> groups;
  int64_t bytes = 0;
  for (size_t k = n; k-- > 0;) {
    const at::Tensor& p = d->params[k];
    const int64_t pb = p.numel() * static_cast<int64_t>(p.element_size());
    if (groups.empty() || bytes + pb > bucket_bytes ||
        d->params[groups.back().front()].scalar_type() != p.scalar_type()) {
      if (groups.empty() || !groups.back().empty()) groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(k);
    bytes += pb;
  }
  for (auto& members : groups) {
    Bucket b;
    int64_t total = 0;
    for (size_t k : members) total += d->params[k].numel();
    b.params = members;
    b.flat = at::zeros({total}, d->params[members.front()].options().requires_grad(false));
    int64_t off = 0;
    for (size_t k : members) {
      d->bucket_of[k] = d->buckets.size();
      d->views[k] = b.flat.narrow(0, off, d->params[k].numel()).view(d->params[k].sizes());
      off += d->params[k].numel();
    }
    d->inv_world.push_back(at::scalar_tensor(1.0 / g.size, b.flat.options()));
    d->buckets.push_back(std::move(b));
  }
  d->ready.assign(n, false);
  d->reset();
  // Every check before the broadcast below, which overwrites every rank's weights: a rank
  // that failed after it would leave the others waiting in their next collective.
  for (size_t i = 0; i < n; ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(d->params[i]);
    if (!acc) fail("parameter ", d->names[i], " is not a leaf of the autograd graph");
    d->accumulators.push_back(std::move(acc));
  }
  check_same_model(g, mod->state);
  d->state = d->params;
  d->state.insert(d->state.end(), frozen.begin(), frozen.end());
  d->state.insert(d->state.end(), d->buffers.begin(), d->buffers.end());
  broadcast_coalesced(g, d->state, 0);
  for (size_t i = 0; i < n; ++i)
    d->hook_keys.push_back(d->accumulators[i]->add_post_hook(std::make_unique<GradReadyHook>(d, i)));
  *out = new sk_ddp{std::move(d)};
  SK_GUARD_END
}

void sk_ddp_free(sk_ddp* ddp) { delete ddp; }

static Ddp& ddp_arg(const sk_ddp* d) {
  if (d == nullptr || !d->ddp) fail("ddp must not be NULL");
  return *d->ddp;
}

sk_error* sk_ddp_prepare(sk_ddp* ddp, int32_t broadcast_buffers) {
  SK_GUARD_BEGIN
  Ddp& d = ddp_arg(ddp);
  {
    std::lock_guard<std::mutex> l(d.mu);
    if (d.active) {
      // A backward failed half-way: its launched reductions still have to end before the
      // buckets are reused (every rank saw the failure, so they fail or finish quickly).
      for (auto& b : d.buckets) Group::drain(b.work);
      d.reset();
    }
  }
  if (broadcast_buffers && !d.buffers.empty()) broadcast_coalesced(*d.group, d.buffers, 0, &d.buffer_flats);
  SK_GUARD_END
}

sk_error* sk_ddp_broadcast_state(sk_ddp* ddp) {
  SK_GUARD_BEGIN
  Ddp& d = ddp_arg(ddp);
  broadcast_coalesced(*d.group, d.state, 0);
  SK_GUARD_END
}

sk_error* sk_ddp_stats(const sk_ddp* ddp, int64_t* buckets, int64_t* reductions, double* wait_seconds) {
  SK_GUARD_BEGIN
  Ddp& d = ddp_arg(ddp);
  out_arg(buckets, "buckets");
  out_arg(reductions, "reductions");
  out_arg(wait_seconds, "wait_seconds");
  std::lock_guard<std::mutex> l(d.mu);
  *buckets = static_cast<int64_t>(d.buckets.size());
  *reductions = d.reductions;
  *wait_seconds = d.wait_seconds;
  SK_GUARD_END
}

}  // extern "C"

// oneDNN-backed kernels: convolution forward / backward-data / backward-weights, average pooling
// and GEMM, with a per-shape primitive cache.
//
// Why this layout: TF.js keeps activations NHWC, which is oneDNN's `nhwc` tag, so activations are
// handed to oneDNN zero-copy. Weights are HWIO in TF.js; the convolution primitives are created
// with `format_tag::any` for weights so oneDNN can pick its fastest (blocked) weight layout, and a
// cached reorder converts HWIO <-> that layout each call (weights are small next to activations,
// and they change every training step, so caching the reordered copy would be wrong).
#include "kernels.h"

#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_version.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
#include <omp.h>
#endif

namespace rift {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& strm() {
  static dnnl::stream s(eng());
  return s;
}

/** 64-byte aligned, grow-only buffer; freed by its destructor. */
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(ptr_); }
  void* ensure(size_t bytes) {
    if (bytes <= size_) return ptr_;
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) throw std::bad_alloc();
    std::free(ptr_);
    ptr_ = p;
    size_ = rounded;
    return ptr_;
  }
  void release() {
    std::free(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

// One scratchpad shared by all primitives (user-managed scratchpad mode): primitives run one at a
// time on the JS thread, and a single grow-only buffer avoids a malloc/free per call.
AlignedBuffer g_scratch;

dnnl::primitive_attr make_attr(const dnnl::post_ops* po = nullptr) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (po != nullptr) attr.set_post_ops(*po);
  return attr;
}

memory scratch_mem(const memory::desc& md) {
  void* p = md.get_size() > 0 ? g_scratch.ensure(md.get_size()) : nullptr;
  return memory(md, eng(), p);
}

memory::desc act_md(int64_t n, int64_t c, int64_t h, int64_t w) { return memory::desc({n, c, h, w}, dt::f32, tag::nhwc); }
memory::desc wei_md(const ConvGeom& g, tag t) { return memory::desc({g.oc, g.ic, g.kh, g.kw}, dt::f32, t); }

/** A weight buffer in TF.js's HWIO layout and, when the primitive wants another, its reorder. */
struct WeightsBridge {
  memory::desc user_md, prim_md;
  bool needs_reorder = false;
  dnnl::reorder reorder;  // user -> prim (forward / backward-data) or prim -> user (backward-weights)
  AlignedBuffer buf;      // holds the weights in prim_md layout when needs_reorder

  WeightsBridge(const memory::desc& user, const memory::desc& prim, bool to_user)
      : user_md(user), prim_md(prim), needs_reorder(!(user == prim)) {
    if (needs_reorder) {
      reorder = to_user ? dnnl::reorder(dnnl::reorder::primitive_desc(eng(), prim_md, eng(), user_md))
                        : dnnl::reorder(dnnl::reorder::primitive_desc(eng(), user_md, eng(), prim_md));
      buf.ensure(prim_md.get_size());
    }
  }
  /** Memory in the primitive's layout holding (or about to hold) the weights at `user`. */
  memory prim_memory(void* user) {
    return memory(prim_md, eng(), needs_reorder ? buf.ensure(prim_md.get_size()) : user);
  }
  void to_prim(const float* user, const memory& prim) {
    if (!needs_reorder) return;
    memory u(user_md, eng(), const_cast<float*>(user));
    reorder.execute(strm(), {{DNNL_ARG_FROM, u}, {DNNL_ARG_TO, prim}});
  }
  void to_user(const memory& prim, float* user) {
    if (!needs_reorder) return;
    memory u(user_md, eng(), user);
    reorder.execute(strm(), {{DNNL_ARG_FROM, prim}, {DNNL_ARG_TO, u}});
  }
};

// The primitive-descriptor constructors changed in oneDNN 3.0 (operation descriptors were
// removed; pooling gained a dilation argument; eltwise post-ops lost their scale). The helpers
// below hide that difference: Debian 12 ships 2.6, Fedora and Homebrew ship 3.x.
#if DNNL_VERSION_MAJOR >= 3
#define RIFT_DNNL_V3 1
#else
#define RIFT_DNNL_V3 0
#endif

using conv_fwd_pd_t = dnnl::convolution_forward::primitive_desc;
using conv_bwd_data_pd_t = dnnl::convolution_backward_data::primitive_desc;
using conv_bwd_weights_pd_t = dnnl::convolution_backward_weights::primitive_desc;
using pool_fwd_pd_t = dnnl::pooling_forward::primitive_desc;
using pool_bwd_pd_t = dnnl::pooling_backward::primitive_desc;

// Direct algorithm (not auto) so results never depend on a Winograd pick: deterministic.
constexpr auto kConvAlg = dnnl::algorithm::convolution_direct;
// TF.js averages over the window's in-bounds elements only.
constexpr auto kAvgAlg = dnnl::algorithm::pooling_avg_exclude_padding;

/**
 * Moves `pd` to the first implementation whose name starts with `prefix`; if none does, returns
 * false and `pd` must be recreated. (oneDNN 2.x: the iterator refers to the operation descriptor,
 * so this must run while that descriptor is alive.) The pick depends only on shape and CPU, so
 * results stay deterministic.
 */
template <typename PD>
bool seek_impl(PD& pd, const char* prefix) {
  do {
    if (std::string(pd.impl_info_str()).rfind(prefix, 0) == 0) return true;
  } while (pd.next_impl());
  return false;
}

/**
 * Implementation preference for a forward convolution, or null for oneDNN's own ranking. One
 * override: for tiny spatial maps with many channels (ResNet-18's last stage, 4x4 with 512
 * channels) the plain jit kernel beats brgconv (oneDNN 2.6.3, AVX-512 Zen 4, batch 128: 24 ms vs
 * 41 ms; on every other ResNet shape measured, brgconv is as fast or faster).
 */
const char* conv_fwd_preference(const ConvGeom& g) {
  return g.oh * g.ow <= 16 && g.ic >= 512 && g.oc >= 512 ? "jit:avx512_core" : nullptr;
}

conv_fwd_pd_t conv_fwd_pd(const ConvGeom& g, bool bias, bool relu, const char* prefer = nullptr) {
  auto src = act_md(g.n, g.ic, g.ih, g.iw), dst = act_md(g.n, g.oc, g.oh, g.ow);
  auto w = wei_md(g, tag::any);
  memory::dims strides{g.sh, g.sw}, pad_l{g.pt, g.pl}, pad_r{g.pb, g.pr};
  const memory::desc bias_md = bias ? memory::desc({g.oc}, dt::f32, tag::a) : memory::desc();
  dnnl::post_ops po;
#if RIFT_DNNL_V3
  if (relu) po.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  auto attr = make_attr(relu ? &po : nullptr);
  // An empty bias descriptor means "no bias".
  auto make = [&] {
    return conv_fwd_pd_t(eng(), dnnl::prop_kind::forward_training, kConvAlg, src, w, bias_md, dst, strides, pad_l,
                         pad_r, attr);
  };
#else
  if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  auto attr = make_attr(relu ? &po : nullptr);
  // Kept alive while the implementation iterator runs (see seek_impl).
  const dnnl::convolution_forward::desc d =
      bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, kConvAlg, src, w, bias_md, dst,
                                             strides, pad_l, pad_r)
           : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, kConvAlg, src, w, dst, strides,
                                             pad_l, pad_r);
  auto make = [&] { return conv_fwd_pd_t(d, attr, eng()); };
#endif
  auto pd = make();
  if (prefer != nullptr && !seek_impl(pd, prefer)) pd = make();
  return pd;
}

conv_bwd_data_pd_t conv_bwd_data_pd(const ConvGeom& g) {
  auto hint = conv_fwd_pd(g, false, false);
  auto dsrc = act_md(g.n, g.ic, g.ih, g.iw), ddst = act_md(g.n, g.oc, g.oh, g.ow);
  memory::dims strides{g.sh, g.sw}, pad_l{g.pt, g.pl}, pad_r{g.pb, g.pr};
#if RIFT_DNNL_V3
  return conv_bwd_data_pd_t(eng(), kConvAlg, dsrc, wei_md(g, tag::any), ddst, strides, pad_l, pad_r, hint, make_attr());
#else
  dnnl::convolution_backward_data::desc d(kConvAlg, dsrc, wei_md(g, tag::any), ddst, strides, pad_l, pad_r);
  return conv_bwd_data_pd_t(d, make_attr(), eng(), hint);
#endif
}

conv_bwd_weights_pd_t conv_bwd_weights_pd(const ConvGeom& g) {
  auto hint = conv_fwd_pd(g, false, false);
  auto src = act_md(g.n, g.ic, g.ih, g.iw), ddst = act_md(g.n, g.oc, g.oh, g.ow);
  memory::dims strides{g.sh, g.sw}, pad_l{g.pt, g.pl}, pad_r{g.pb, g.pr};
#if RIFT_DNNL_V3
  return conv_bwd_weights_pd_t(eng(), kConvAlg, src, wei_md(g, tag::any), ddst, strides, pad_l, pad_r, hint, make_attr());
#else
  dnnl::convolution_backward_weights::desc d(kConvAlg, src, wei_md(g, tag::any), ddst, strides, pad_l, pad_r);
  return conv_bwd_weights_pd_t(d, make_attr(), eng(), hint);
#endif
}

pool_fwd_pd_t pool_fwd_pd(const PoolGeom& g) {
  auto src = act_md(g.n, g.c, g.ih, g.iw), dst = act_md(g.n, g.c, g.oh, g.ow);
  memory::dims strides{g.sh, g.sw}, kernel{g.kh, g.kw}, pad_l{g.pt, g.pl}, pad_r{g.pb, g.pr};
#if RIFT_DNNL_V3
  return pool_fwd_pd_t(eng(), dnnl::prop_kind::forward_training, kAvgAlg, src, dst, strides, kernel,
                       memory::dims{0, 0}, pad_l, pad_r, make_attr());
#else
  dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_training, kAvgAlg, src, dst, strides, kernel, pad_l, pad_r);
  return pool_fwd_pd_t(d, make_attr(), eng());
#endif
}

pool_bwd_pd_t pool_bwd_pd(const PoolGeom& g) {
  auto hint = pool_fwd_pd(g);
  auto dsrc = act_md(g.n, g.c, g.ih, g.iw), ddst = act_md(g.n, g.c, g.oh, g.ow);
  memory::dims strides{g.sh, g.sw}, kernel{g.kh, g.kw}, pad_l{g.pt, g.pl}, pad_r{g.pb, g.pr};
#if RIFT_DNNL_V3
  return pool_bwd_pd_t(eng(), kAvgAlg, dsrc, ddst, strides, kernel, memory::dims{0, 0}, pad_l, pad_r, hint, make_attr());
#else
  dnnl::pooling_backward::desc d(kAvgAlg, dsrc, ddst, strides, kernel, pad_l, pad_r);
  return pool_bwd_pd_t(d, make_attr(), eng(), hint);
#endif
}

struct ConvFwdEntry {
  conv_fwd_pd_t pd;
  dnnl::convolution_forward prim;
  WeightsBridge w;
  ConvFwdEntry(const ConvGeom& g, bool bias, bool relu)
      : pd(conv_fwd_pd(g, bias, relu, conv_fwd_preference(g))), prim(pd), w(wei_md(g, tag::hwio), pd.weights_desc(), false) {}
};

struct ConvBwdDataEntry {
  conv_bwd_data_pd_t pd;
  dnnl::convolution_backward_data prim;
  WeightsBridge w;
  explicit ConvBwdDataEntry(const ConvGeom& g)
      : pd(conv_bwd_data_pd(g)), prim(pd), w(wei_md(g, tag::hwio), pd.weights_desc(), false) {}
};

struct ConvBwdWeightsEntry {
  conv_bwd_weights_pd_t pd;
  dnnl::convolution_backward_weights prim;
  WeightsBridge w;
  explicit ConvBwdWeightsEntry(const ConvGeom& g)
      : pd(conv_bwd_weights_pd(g)), prim(pd), w(wei_md(g, tag::hwio), pd.diff_weights_desc(), true) {}
};

struct PoolFwdEntry {
  pool_fwd_pd_t pd;
  dnnl::pooling_forward prim;
  explicit PoolFwdEntry(const PoolGeom& g) : pd(pool_fwd_pd(g)), prim(pd) {}
};

struct PoolBwdEntry {
  pool_bwd_pd_t pd;
  dnnl::pooling_backward prim;
  explicit PoolBwdEntry(const PoolGeom& g) : pd(pool_bwd_pd(g)), prim(pd) {}
};

/**
 * Shape-keyed cache. A network has a few dozen distinct layer shapes; the bound only guards
 * against unbounded growth when shapes vary freely (then the cache is simply flushed).
 */
template <typename Entry>
class Cache {
 public:
  static constexpr size_t kMaxEntries = 256;
  template <typename Make>
  Entry& get(const std::string& key, Make make) {
    auto it = map_.find(key);
    if (it != map_.end()) return *it->second;
    if (map_.size() >= kMaxEntries) map_.clear();
    auto e = make();
    Entry& ref = *e;
    map_.emplace(key, std::move(e));
    return ref;
  }
  void clear() { map_.clear(); }
  size_t size() const { return map_.size(); }

 private:
  std::unordered_map<std::string, std::unique_ptr<Entry>> map_;
};

Cache<ConvFwdEntry> g_conv_fwd;
Cache<ConvBwdDataEntry> g_conv_bwd_data;
Cache<ConvBwdWeightsEntry> g_conv_bwd_weights;
Cache<PoolFwdEntry> g_pool_fwd;
Cache<PoolBwdEntry> g_pool_bwd;

void run(const dnnl::primitive& p, const memory::desc& scratch_md, std::unordered_map<int, memory> args) {
  args.emplace(DNNL_ARG_SCRATCHPAD, scratch_mem(scratch_md));
  p.execute(strm(), args);
  strm().wait();
}

template <typename... T>
std::string join_key(const char* kind, T... v) {
  std::ostringstream s;
  s << kind;
  ((s << ':' << v), ...);
  return s.str();
}

}  // namespace

std::string ConvGeom::key() const { return join_key("conv", n, ih, iw, ic, oc, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow); }
std::string PoolGeom::key() const { return join_key("pool", n, ih, iw, c, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow); }

void conv_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, bool relu, float* y) {
  const bool has_bias = bias != nullptr;
  auto& e = g_conv_fwd.get(g.key() + (has_bias ? "b" : "") + (relu ? "r" : ""),
                           [&] { return std::make_unique<ConvFwdEntry>(g, has_bias, relu); });
  memory wm = e.w.prim_memory(const_cast<float*>(w));
  e.w.to_prim(w, wm);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(e.pd.src_desc(), eng(), const_cast<float*>(x))},
      {DNNL_ARG_WEIGHTS, wm},
      {DNNL_ARG_DST, memory(e.pd.dst_desc(), eng(), y)}};
  if (has_bias) args.emplace(DNNL_ARG_BIAS, memory(e.pd.bias_desc(), eng(), const_cast<float*>(bias)));
  run(e.prim, e.pd.scratchpad_desc(), std::move(args));
}

void conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  auto& e = g_conv_bwd_data.get(g.key(), [&] { return std::make_unique<ConvBwdDataEntry>(g); });
  memory wm = e.w.prim_memory(const_cast<float*>(w));
  e.w.to_prim(w, wm);
  run(e.prim, e.pd.scratchpad_desc(),
      {{DNNL_ARG_DIFF_DST, memory(e.pd.diff_dst_desc(), eng(), const_cast<float*>(dy))},
       {DNNL_ARG_WEIGHTS, wm},
       {DNNL_ARG_DIFF_SRC, memory(e.pd.diff_src_desc(), eng(), dx)}});
}

void conv_backward_weights(const ConvGeom& g, const float* x, const float* dy, float* dw) {
  auto& e = g_conv_bwd_weights.get(g.key(), [&] { return std::make_unique<ConvBwdWeightsEntry>(g); });
  memory wm = e.w.prim_memory(dw);
  run(e.prim, e.pd.scratchpad_desc(),
      {{DNNL_ARG_SRC, memory(e.pd.src_desc(), eng(), const_cast<float*>(x))},
       {DNNL_ARG_DIFF_DST, memory(e.pd.diff_dst_desc(), eng(), const_cast<float*>(dy))},
       {DNNL_ARG_DIFF_WEIGHTS, wm}});
  e.w.to_user(wm, dw);
  strm().wait();
}

void avg_pool_forward(const PoolGeom& g, const float* x, float* y) {
  auto& e = g_pool_fwd.get(g.key(), [&] { return std::make_unique<PoolFwdEntry>(g); });
  run(e.prim, e.pd.scratchpad_desc(),
      {{DNNL_ARG_SRC, memory(e.pd.src_desc(), eng(), const_cast<float*>(x))},
       {DNNL_ARG_DST, memory(e.pd.dst_desc(), eng(), y)}});
}

void avg_pool_backward(const PoolGeom& g, const float* dy, float* dx) {
  auto& e = g_pool_bwd.get(g.key(), [&] { return std::make_unique<PoolBwdEntry>(g); });
  run(e.prim, e.pd.scratchpad_desc(),
      {{DNNL_ARG_DIFF_DST, memory(e.pd.diff_dst_desc(), eng(), const_cast<float*>(dy))},
       {DNNL_ARG_DIFF_SRC, memory(e.pd.diff_src_desc(), eng(), dx)}});
}

void matmul(const float* a, const float* b, float* c, int64_t batch, int64_t batchA, int64_t batchB,
            int64_t m, int64_t n, int64_t k, bool transA, bool transB) {
  const int64_t lda = transA ? m : k, ldb = transB ? k : n;
  for (int64_t i = 0; i < batch; i++) {
    const float* ai = a + (batchA == 1 ? 0 : i) * m * k;
    const float* bi = b + (batchB == 1 ? 0 : i) * k * n;
    auto st = dnnl::sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m, n, k, 1.f, ai, lda, bi, ldb, 0.f,
                          c + i * m * n, n);
    if (st != dnnl::status::success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(int(st)));
  }
}

void set_threads(int n) {
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  if (n != omp_get_max_threads()) {
    omp_set_num_threads(n);
    // Some implementations (e.g. brgconv) split work by the thread count at creation time.
    clear_cache();
  }
#else
  (void)n;
#endif
}

int get_threads() {
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void clear_cache() {
  g_conv_fwd.clear();
  g_conv_bwd_data.clear();
  g_conv_bwd_weights.clear();
  g_pool_fwd.clear();
  g_pool_bwd.clear();
  g_scratch.release();
}

size_t cache_entries() {
  return g_conv_fwd.size() + g_conv_bwd_data.size() + g_conv_bwd_weights.size() + g_pool_fwd.size() +
         g_pool_bwd.size();
}

std::string dnnl_version() {
  const dnnl_version_t* v = dnnl::version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

std::string dnnl_runtime() {
  switch (dnnl::version()->cpu_runtime) {
    case DNNL_RUNTIME_OMP: return "omp";
    case DNNL_RUNTIME_TBB: return "tbb";
    case DNNL_RUNTIME_SEQ: return "seq";
    case DNNL_RUNTIME_THREADPOOL: return "threadpool";
    default: return "other";
  }
}

std::string dnnl_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

}  // namespace rift

// Node-API surface of the native oneDNN kernels (loaded by lib/src/onednn.ts).
//
// Every kernel takes its inputs and its preallocated output as Float32Arrays (zero-copy: the
// pointers are the TF.js cpu backend's own buffers) plus integer geometry. The JS side owns all
// tensor memory; native code keeps only cached primitives and scratch buffers. Buffer lengths are
// checked against the geometry here, so a wrong call throws a JS error instead of corrupting memory.
#include <napi.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "kernels.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

bool g_malloc_tuned = false;

/**
 * Keeps freed memory in the process instead of returning it to the OS (glibc only; opt out with
 * RIFT_MALLOC_TUNING=0). Why: every kernel output is a new ArrayBuffer of up to tens of MB, and
 * glibc serves blocks >= 128 KiB with a fresh mmap that is unmapped again on free. First-touch
 * page faults on fresh pages then dominate memory-bound kernels (measured on a 2-vCPU VM: an
 * 8 MiB multiply took 24 ms with a fresh output buffer and 0.5 ms with a reused one). No mmap
 * for large blocks + no trimming makes glibc recycle heap memory across steps, like PyTorch's
 * recommended MALLOC_* settings; the cost is that RSS stays at its peak.
 */
void tune_malloc() {
#if defined(__GLIBC__)
  const char* env = std::getenv("RIFT_MALLOC_TUNING");
  if (env != nullptr && std::strcmp(env, "0") == 0) return;
  g_malloc_tuned = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 &&
                   mallopt(M_TOP_PAD, 256 << 20) == 1;
#endif
}

// JS calls in from one thread, but worker threads could load the addon too: the caches and the
// scratchpad are process-wide, so serialise.
std::mutex g_mutex;

struct F32 {
  float* data;
  size_t length;
};

F32 f32_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  }
  auto a = v.As<Napi::Float32Array>();
  return {a.Data(), a.ElementLength()};
}

float* f32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected) {
  F32 a = f32_arg(info, i, name);
  if (int64_t(a.length) != expected) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected " + std::to_string(expected) +
                                                " elements, got " + std::to_string(a.length));
  }
  return a.data;
}

/** A Float32Array of `expected` elements, or null/undefined -> nullptr. */
float* optional_f32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return f32_arg(info, i, name, expected);
}

std::vector<int64_t> int_array(const Napi::CallbackInfo& info, size_t i, const char* name, size_t expected_len) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an array");
  auto arr = info[i].As<Napi::Array>();
  if (expected_len != 0 && arr.Length() != expected_len) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected " + std::to_string(expected_len) + " values");
  }
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value e = arr.Get(k);
    if (!e.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must hold numbers");
    out[k] = e.As<Napi::Number>().Int64Value();
  }
  return out;
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}
double num_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

void check_positive(const Napi::Env& env, const std::vector<int64_t>& v, const char* what) {
  for (int64_t x : v)
    if (x < 0) throw Napi::RangeError::New(env, std::string(what) + ": negative value");
}

/** [n, ih, iw, ic, oc, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow] */
rift::ConvGeom conv_geom(const Napi::CallbackInfo& info, size_t i) {
  auto v = int_array(info, i, "conv geometry", 15);
  check_positive(info.Env(), v, "conv geometry");
  rift::ConvGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
  if (g.sh < 1 || g.sw < 1 || g.kh < 1 || g.kw < 1 || (g.ih + g.pt + g.pb - g.kh) / g.sh + 1 != g.oh ||
      (g.iw + g.pl + g.pr - g.kw) / g.sw + 1 != g.ow) {
    throw Napi::RangeError::New(info.Env(), "conv geometry: output size inconsistent with input/pad/stride");
  }
  return g;
}

/** [n, ih, iw, c, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow] */
rift::PoolGeom pool_geom(const Napi::CallbackInfo& info, size_t i) {
  auto v = int_array(info, i, "pool geometry", 14);
  check_positive(info.Env(), v, "pool geometry");
  rift::PoolGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13]};
  if (g.sh < 1 || g.sw < 1 || g.kh < 1 || g.kw < 1 || (g.ih + g.pt + g.pb - g.kh) / g.sh + 1 != g.oh ||
      (g.iw + g.pl + g.pr - g.kw) / g.sw + 1 != g.ow) {
    throw Napi::RangeError::New(info.Env(), "pool geometry: output size inconsistent with input/pad/stride");
  }
  return g;
}

/** Wraps a kernel so native exceptions (dnnl::error, bad_alloc, ...) surface as JS errors. */
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_mutex);
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("rift-onednn: ") + e.what());
  }
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("dnnlVersion", rift::dnnl_version());
  o.Set("runtime", rift::dnnl_runtime());
  o.Set("isa", rift::dnnl_isa());
  o.Set("threads", rift::get_threads());
  o.Set("cacheEntries", double(rift::cache_entries()));
  o.Set("mallocTuned", g_malloc_tuned);
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int64_t n = int_arg(info, 0, "threads");
  if (n < 1 || n > 1024) throw Napi::RangeError::New(info.Env(), "threads must be in 1..1024");
  rift::set_threads(int(n));
  return Napi::Number::New(info.Env(), rift::get_threads());
}

Napi::Value ClearCache(const Napi::CallbackInfo& info) {
  rift::clear_cache();
  return info.Env().Undefined();
}

// conv2d(x, w, bias|null, y, geom, relu)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  auto g = conv_geom(info, 4);
  const float* x = f32_arg(info, 0, "x", g.n * g.ih * g.iw * g.ic);
  const float* w = f32_arg(info, 1, "filter", g.kh * g.kw * g.ic * g.oc);
  const float* bias = optional_f32_arg(info, 2, "bias", g.oc);
  float* y = f32_arg(info, 3, "y", g.n * g.oh * g.ow * g.oc);
  rift::conv_forward(g, x, w, bias, info[5].ToBoolean().Value(), y);
  return info.Env().Undefined();
}

// conv2dBackpropInput(dy, w, dx, geom)
Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo& info) {
  auto g = conv_geom(info, 3);
  const float* dy = f32_arg(info, 0, "dy", g.n * g.oh * g.ow * g.oc);
  const float* w = f32_arg(info, 1, "filter", g.kh * g.kw * g.ic * g.oc);
  float* dx = f32_arg(info, 2, "dx", g.n * g.ih * g.iw * g.ic);
  rift::conv_backward_data(g, dy, w, dx);
  return info.Env().Undefined();
}

// conv2dBackpropFilter(x, dy, dw, geom)
Napi::Value Conv2dBackpropFilter(const Napi::CallbackInfo& info) {
  auto g = conv_geom(info, 3);
  const float* x = f32_arg(info, 0, "x", g.n * g.ih * g.iw * g.ic);
  const float* dy = f32_arg(info, 1, "dy", g.n * g.oh * g.ow * g.oc);
  float* dw = f32_arg(info, 2, "dw", g.kh * g.kw * g.ic * g.oc);
  rift::conv_backward_weights(g, x, dy, dw);
  return info.Env().Undefined();
}

// avgPool(x, y, geom)
Napi::Value AvgPool(const Napi::CallbackInfo& info) {
  auto g = pool_geom(info, 2);
  const float* x = f32_arg(info, 0, "x", g.n * g.ih * g.iw * g.c);
  float* y = f32_arg(info, 1, "y", g.n * g.oh * g.ow * g.c);
  rift::avg_pool_forward(g, x, y);
  return info.Env().Undefined();
}

// avgPoolGrad(dy, dx, geom)
Napi::Value AvgPoolGrad(const Napi::CallbackInfo& info) {
  auto g = pool_geom(info, 2);
  const float* dy = f32_arg(info, 0, "dy", g.n * g.oh * g.ow * g.c);
  float* dx = f32_arg(info, 1, "dx", g.n * g.ih * g.iw * g.c);
  rift::avg_pool_backward(g, dy, dx);
  return info.Env().Undefined();
}

// matmul(a, b, c, [batch, batchA, batchB, m, n, k], transA, transB)
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  auto v = int_array(info, 3, "matmul geometry", 6);
  check_positive(info.Env(), v, "matmul geometry");
  const int64_t batch = v[0], ba = v[1], bb = v[2], m = v[3], n = v[4], k = v[5];
  if ((ba != 1 && ba != batch) || (bb != 1 && bb != batch)) {
    throw Napi::RangeError::New(info.Env(), "matmul: operand batch must be 1 or the output batch");
  }
  const float* a = f32_arg(info, 0, "a", ba * m * k);
  const float* b = f32_arg(info, 1, "b", bb * k * n);
  float* c = f32_arg(info, 2, "c", batch * m * n);
  rift::matmul(a, b, c, batch, ba, bb, m, n, k, info[4].ToBoolean().Value(), info[5].ToBoolean().Value());
  return info.Env().Undefined();
}

// binary(op, a, b, out, dims, stridesA, stridesB)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const int64_t op = int_arg(info, 0, "op");
  if (op < 0 || op > 3) throw Napi::RangeError::New(info.Env(), "binary: unknown op");
  auto dims = int_array(info, 4, "dims", 0);
  if (dims.empty() || dims.size() > 8) throw Napi::RangeError::New(info.Env(), "binary: rank must be 1..8");
  auto sa = int_array(info, 5, "stridesA", dims.size());
  auto sb = int_array(info, 6, "stridesB", dims.size());
  check_positive(info.Env(), dims, "dims");
  check_positive(info.Env(), sa, "stridesA");
  check_positive(info.Env(), sb, "stridesB");
  int64_t total = 1, lastA = 0, lastB = 0;
  for (size_t d = 0; d < dims.size(); d++) {
    total *= dims[d];
    if (dims[d] > 0) {
      lastA += (dims[d] - 1) * sa[d];
      lastB += (dims[d] - 1) * sb[d];
    }
  }
  F32 a = f32_arg(info, 1, "a"), b = f32_arg(info, 2, "b");
  float* out = f32_arg(info, 3, "out", total);
  if (total > 0 && (lastA >= int64_t(a.length) || lastB >= int64_t(b.length))) {
    throw Napi::RangeError::New(info.Env(), "binary: strides reach past an operand");
  }
  if (total > 0) rift::binary(rift::BinaryOp(op), a.data, b.data, out, int(dims.size()), dims.data(), sa.data(), sb.data());
  return info.Env().Undefined();
}

// unary(op, x, y, a, b)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  const int64_t op = int_arg(info, 0, "op");
  if (op < 0 || op > 3) throw Napi::RangeError::New(info.Env(), "unary: unknown op");
  F32 x = f32_arg(info, 1, "x");
  float* y = f32_arg(info, 2, "y", int64_t(x.length));
  rift::unary(rift::UnaryOp(op), x.data, y, int64_t(x.length), num_arg(info, 3, "a"), num_arg(info, 4, "b"));
  return info.Env().Undefined();
}

// reluGrad(dy, x, dx)
Napi::Value ReluGrad(const Napi::CallbackInfo& info) {
  F32 dy = f32_arg(info, 0, "dy");
  const float* x = f32_arg(info, 1, "x", int64_t(dy.length));
  float* dx = f32_arg(info, 2, "dx", int64_t(dy.length));
  rift::relu_grad(dy.data, x, dx, int64_t(dy.length));
  return info.Env().Undefined();
}

// reduceSum(x, out, a, r, c, scale): x [a, r, c] -> out [a, c] = scale · Σ_r
Napi::Value ReduceSum(const Napi::CallbackInfo& info) {
  const int64_t a = int_arg(info, 2, "a"), r = int_arg(info, 3, "r"), c = int_arg(info, 4, "c");
  if (a < 0 || r < 0 || c < 0) throw Napi::RangeError::New(info.Env(), "reduceSum: negative size");
  const float* x = f32_arg(info, 0, "x", a * r * c);
  float* out = f32_arg(info, 1, "out", a * c);
  rift::reduce_sum_middle(x, out, a, r, c, num_arg(info, 5, "scale"));
  return info.Env().Undefined();
}

// bnTrain(x, scale, offset, y, mean, variance, m, c, eps[, residual|null, relu])
Napi::Value BnTrain(const Napi::CallbackInfo& info) {
  const int64_t m = int_arg(info, 6, "m"), c = int_arg(info, 7, "c");
  if (m < 1 || c < 1) throw Napi::RangeError::New(info.Env(), "bnTrain: empty input");
  const float* x = f32_arg(info, 0, "x", m * c);
  const float* scale = f32_arg(info, 1, "scale", c);
  const float* offset = f32_arg(info, 2, "offset", c);
  float* y = f32_arg(info, 3, "y", m * c);
  float* mean = f32_arg(info, 4, "mean", c);
  float* var = f32_arg(info, 5, "variance", c);
  const float* residual = optional_f32_arg(info, 9, "residual", m * c);
  rift::bn_train_forward(x, scale, offset, y, mean, var, m, c, float(num_arg(info, 8, "eps")), residual,
                         info.Length() > 10 && info[10].ToBoolean().Value());
  return info.Env().Undefined();
}

// bnTrainGrad(dy, x, scale, mean, variance, dx, dscale, doffset, m, c, eps[, yAct|null])
Napi::Value BnTrainGrad(const Napi::CallbackInfo& info) {
  const int64_t m = int_arg(info, 8, "m"), c = int_arg(info, 9, "c");
  if (m < 1 || c < 1) throw Napi::RangeError::New(info.Env(), "bnTrainGrad: empty input");
  const float* dy = f32_arg(info, 0, "dy", m * c);
  const float* x = f32_arg(info, 1, "x", m * c);
  const float* scale = f32_arg(info, 2, "scale", c);
  const float* mean = f32_arg(info, 3, "mean", c);
  const float* var = f32_arg(info, 4, "variance", c);
  float* dx = f32_arg(info, 5, "dx", m * c);
  float* dscale = f32_arg(info, 6, "dscale", c);
  float* doffset = f32_arg(info, 7, "doffset", c);
  const float* y_act = optional_f32_arg(info, 11, "yAct", m * c);
  rift::bn_train_backward(dy, x, scale, mean, var, dx, dscale, doffset, m, c, float(num_arg(info, 10, "eps")), y_act);
  return info.Env().Undefined();
}

// bnInfer(x, mean, variance, scale|null, offset|null, y, m, c, eps)
Napi::Value BnInfer(const Napi::CallbackInfo& info) {
  const int64_t m = int_arg(info, 6, "m"), c = int_arg(info, 7, "c");
  if (m < 0 || c < 1) throw Napi::RangeError::New(info.Env(), "bnInfer: bad size");
  const float* x = f32_arg(info, 0, "x", m * c);
  const float* mean = f32_arg(info, 1, "mean", c);
  const float* var = f32_arg(info, 2, "variance", c);
  const float* scale = optional_f32_arg(info, 3, "scale", c);
  const float* offset = optional_f32_arg(info, 4, "offset", c);
  float* y = f32_arg(info, 5, "y", m * c);
  rift::bn_infer(x, mean, var, scale, offset, y, m, c, float(num_arg(info, 8, "eps")));
  return info.Env().Undefined();
}

// bnEval(x, gamma, beta, mean, variance, residual|null, relu, eps, y, scale, shift, m, c)
Napi::Value BnEval(const Napi::CallbackInfo& info) {
  const int64_t m = int_arg(info, 11, "m"), c = int_arg(info, 12, "c");
  if (m < 0 || c < 1) throw Napi::RangeError::New(info.Env(), "bnEval: bad size");
  const float* x = f32_arg(info, 0, "x", m * c);
  const float* gamma = f32_arg(info, 1, "gamma", c);
  const float* beta = f32_arg(info, 2, "beta", c);
  const float* mean = f32_arg(info, 3, "mean", c);
  const float* var = f32_arg(info, 4, "variance", c);
  const float* residual = optional_f32_arg(info, 5, "residual", m * c);
  float* y = f32_arg(info, 8, "y", m * c);
  float* scale = f32_arg(info, 9, "scale", c);
  float* shift = f32_arg(info, 10, "shift", c);
  rift::bn_eval_forward(x, gamma, beta, mean, var, float(num_arg(info, 7, "eps")), residual, info[6].ToBoolean().Value(), y, scale, shift, m, c);
  return info.Env().Undefined();
}

// scaleShiftReluGrad(dy, y, scale, dx, m, c)
Napi::Value ScaleShiftReluGrad(const Napi::CallbackInfo& info) {
  const int64_t m = int_arg(info, 4, "m"), c = int_arg(info, 5, "c");
  if (m < 0 || c < 1) throw Napi::RangeError::New(info.Env(), "scaleShiftReluGrad: bad size");
  const float* dy = f32_arg(info, 0, "dy", m * c);
  const float* y = f32_arg(info, 1, "y", m * c);
  const float* scale = f32_arg(info, 2, "scale", c);
  float* dx = f32_arg(info, 3, "dx", m * c);
  rift::scale_shift_relu_grad(dy, y, scale, dx, m, c);
  return info.Env().Undefined();
}

// sgdStep(theta, grad, buf|null, thetaOut, bufOut|null, lr, momentum, weightDecay)
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  F32 theta = f32_arg(info, 0, "theta");
  const int64_t n = int64_t(theta.length);
  const float* grad = f32_arg(info, 1, "grad", n);
  const float* buf = optional_f32_arg(info, 2, "buf", n);
  float* theta_out = f32_arg(info, 3, "thetaOut", n);
  float* buf_out = optional_f32_arg(info, 4, "bufOut", n);
  const double lr = num_arg(info, 5, "lr"), momentum = num_arg(info, 6, "momentum"), weight_decay = num_arg(info, 7, "weightDecay");
  if (momentum != 0 && buf_out == nullptr) throw Napi::TypeError::New(info.Env(), "sgdStep: bufOut is required when momentum != 0");
  rift::sgd_step(theta.data, grad, buf, theta_out, buf_out, n, float(lr), float(momentum), float(weight_decay), weight_decay != 0,
                 momentum != 0);
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag tuned;
  std::call_once(tuned, tune_malloc);
  auto def = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, f, name));
  };
  def("info", guarded<Info>);
  def("setThreads", guarded<SetThreads>);
  def("clearCache", guarded<ClearCache>);
  def("conv2d", guarded<Conv2d>);
  def("conv2dBackpropInput", guarded<Conv2dBackpropInput>);
  def("conv2dBackpropFilter", guarded<Conv2dBackpropFilter>);
  def("avgPool", guarded<AvgPool>);
  def("avgPoolGrad", guarded<AvgPoolGrad>);
  def("matmul", guarded<Matmul>);
  def("binary", guarded<Binary>);
  def("unary", guarded<Unary>);
  def("reluGrad", guarded<ReluGrad>);
  def("reduceSum", guarded<ReduceSum>);
  def("bnTrain", guarded<BnTrain>);
  def("bnTrainGrad", guarded<BnTrainGrad>);
  def("bnInfer", guarded<BnInfer>);
  def("bnEval", guarded<BnEval>);
  def("scaleShiftReluGrad", guarded<ScaleShiftReluGrad>);
  def("sgdStep", guarded<SgdStep>);
  return exports;
}

}  // namespace

NODE_API_MODULE(rift_onednn, Init)

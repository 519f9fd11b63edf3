// Memory-bound kernels written by hand: broadcasting binary ops, ReLU/Step, middle-axis sums and
// training/inference batch norm. They are simple streaming loops (the compiler vectorises the
// inner loops); OpenMP splits them over the same threads oneDNN uses. Sums accumulate in double,
// like the TF.js cpu backend (whose JS accumulators are doubles), so results agree closely.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rift {
namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
// Rows longer than this are split so that one huge contiguous row still uses every thread.
constexpr int64_t kChunk = 1 << 14;

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// TF.js's Relu (Math.max(0, v): NaN kept, −0 → +0) and its gradient dy·step(v) (dy·1 where v > 0,
// dy·0 elsewhere, which keeps −0 and turns an Inf/NaN dy into NaN, like the product; NaN where v
// is NaN). step(relu(u)) = step(u), so the gradient can be taken at ReLU's output as at its input.
inline float relu_of(float v) { return v > 0.f ? v : (v == v ? 0.f : v); }
inline float relu_grad_of(float g, float v) { return v > 0.f ? g : (v == v ? g * 0.f : v); }

/**
 * Per-thread double accumulators [arrays][threads][c], zeroed; freed with the object. Each
 * thread's block starts on its own 64-byte cache line: threads add into these in their inner
 * loops, and a shared line would bounce between cores on every iteration (false sharing).
 */
struct Partials {
  int threads;
  int64_t c, stride;
  std::vector<double> v;
  double* base;
  Partials(int t, int64_t c_, int arrays)
      : threads(t), c(c_), stride((c_ + 7) / 8 * 8), v(size_t(t) * size_t(arrays) * size_t(stride) + 8, 0.0) {
    const auto misalign = reinterpret_cast<uintptr_t>(v.data()) % 64;
    base = v.data() + (misalign == 0 ? 0 : (64 - misalign) / sizeof(double));
  }
  double* at(int thread, int array) { return base + (size_t(array) * threads + thread) * stride; }
  /** Σ over threads of array `array`, channel j. */
  double total(int array, int64_t j) const {
    double s = 0;
    for (int t = 0; t < threads; t++) s += base[(size_t(array) * threads + t) * stride + j];
    return s;
  }
};

/** Runs body(row_begin, row_end, thread) over [0, m) split evenly across threads. */
template <typename Body>
void split_rows(int64_t m, int64_t row_elems, int threads, Body body) {
  if (threads <= 1 || m * row_elems < kParallelMin) {
    body(int64_t(0), m, 0);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
#ifdef _OPENMP
    const int nt = omp_get_num_threads();
#else
    const int nt = 1;
#endif
    const int64_t per = (m + nt - 1) / nt, b = std::min(m, per * t), e = std::min(m, b + per);
    if (b < e) body(b, e, t);
  }
}

template <typename F>
inline void binary_row(F f, const float* pa, const float* pb, float* po, int64_t len, int64_t isa, int64_t isb) {
  if (isa != 0 && isb != 0) {
    for (int64_t i = 0; i < len; i++) po[i] = f(pa[i], pb[i]);
  } else if (isa != 0) {
    const float bv = *pb;
    for (int64_t i = 0; i < len; i++) po[i] = f(pa[i], bv);
  } else if (isb != 0) {
    const float av = *pa;
    for (int64_t i = 0; i < len; i++) po[i] = f(av, pb[i]);
  } else {
    const float v = f(*pa, *pb);
    for (int64_t i = 0; i < len; i++) po[i] = v;
  }
}

/**
 * out[row, i] = f(a[offA(row) + i·isa], b[offB(row) + i·isb]) over rows × inner. Each thread takes
 * a contiguous block of rows and walks the operand offsets with an odometer (no per-row
 * division), so short rows such as the C of a per-channel [N·H·W, C] ⊕ [C] stay cheap. With few
 * rows (e.g. one long same-shape row) the rows are cut into chunks instead.
 */
template <typename F>
void binary_impl(F f, const float* a, const float* b, float* out, int rank, const int64_t* dims, const int64_t* sa,
                 const int64_t* sb) {
  const int64_t inner = dims[rank - 1], isa = sa[rank - 1], isb = sb[rank - 1];
  int64_t rows = 1;
  for (int d = 0; d < rank - 1; d++) rows *= dims[d];
  const int threads = rows * inner >= kParallelMin ? max_threads() : 1;
  auto row_offsets = [&](int64_t row, int64_t* idx, int64_t& oa, int64_t& ob) {
    oa = ob = 0;
    for (int d = rank - 2; d >= 0; d--) {
      idx[d] = row % dims[d];
      row /= dims[d];
      oa += idx[d] * sa[d];
      ob += idx[d] * sb[d];
    }
  };
  if (rows >= 4 * int64_t(threads)) {
    split_rows(rows, inner, threads, [&](int64_t r0, int64_t r1, int) {
      int64_t idx[8], oa, ob;
      row_offsets(r0, idx, oa, ob);
      for (int64_t r = r0; r < r1; r++) {
        binary_row(f, a + oa, b + ob, out + r * inner, inner, isa, isb);
        for (int d = rank - 2; d >= 0; d--) {  // odometer step to row r + 1
          oa += sa[d];
          ob += sb[d];
          if (++idx[d] < dims[d]) break;
          oa -= sa[d] * dims[d];
          ob -= sb[d] * dims[d];
          idx[d] = 0;
        }
      }
    });
    return;
  }
  const int64_t chunk = std::min(inner, kChunk);
  const int64_t nchunks = (inner + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < rows * nchunks; t++) {
    const int64_t row = t / nchunks, c0 = (t % nchunks) * chunk;
    int64_t idx[8], oa, ob;
    row_offsets(row, idx, oa, ob);
    binary_row(f, a + oa + c0 * isa, b + ob + c0 * isb, out + row * inner + c0, std::min(chunk, inner - c0), isa, isb);
  }
}


// The per-channel loops below run on rows of at least kMinRow floats: a quarter-width layer has
// 16 channels, and a 16-float inner loop spends more on loop overhead than on the arithmetic.
// Since a tensor's rows are contiguous, k consecutive rows form one row of k·c floats whose
// per-channel vectors are the originals repeated k times; every element meets the same
// operands, so results are unchanged. On x86-64 GCC also builds an AVX2 clone, picked at load
// time on CPUs that have it (each lane rounds as the scalar code does; no FMA, see binding.gyp).
constexpr int64_t kMinRow = 64;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RIFT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RIFT_CLONES
#endif

/** Per-channel vectors va (and vb, when not null) repeated k times: rows of len = k·c floats. */
struct Period {
  int64_t k, len;
  std::vector<float> a, b;
  Period(int64_t m, int64_t c, const float* va, const float* vb) : k(1), len(c) {
    if (c >= kMinRow || m < 2) return;
    k = std::min(m, (kMinRow + c - 1) / c);
    len = k * c;
    a.resize(size_t(len));
    if (vb != nullptr) b.resize(size_t(len));
    for (int64_t j = 0; j < len; j++) {
      a[size_t(j)] = va[j % c];
      if (vb != nullptr) b[size_t(j)] = vb[j % c];
    }
  }
  const float* pa(const float* va) const { return k == 1 ? va : a.data(); }
  const float* pb(const float* vb) const { return k == 1 ? vb : b.data(); }
};

RIFT_CLONES void scale_shift_rows(const float* __restrict x, const float* __restrict mul, const float* __restrict add,
                                  const float* __restrict r, bool relu, float* __restrict y, int64_t rows, int64_t c) {
  for (int64_t i = 0; i < rows; i++) {
    const float* __restrict xi = x + i * c;
    float* __restrict yi = y + i * c;
    if (r != nullptr) {
      const float* __restrict ri = r + i * c;
      if (relu) {
        for (int64_t k = 0; k < c; k++) yi[k] = relu_of((xi[k] * mul[k] + add[k]) + ri[k]);
      } else {
        for (int64_t k = 0; k < c; k++) yi[k] = (xi[k] * mul[k] + add[k]) + ri[k];
      }
    } else if (relu) {
      for (int64_t k = 0; k < c; k++) yi[k] = relu_of(xi[k] * mul[k] + add[k]);
    } else {
      for (int64_t k = 0; k < c; k++) yi[k] = xi[k] * mul[k] + add[k];
    }
  }
}

RIFT_CLONES void relu_grad_scale_rows(const float* __restrict dy, const float* __restrict y, const float* __restrict scale,
                                      float* __restrict dx, int64_t rows, int64_t c) {
  for (int64_t i = 0; i < rows; i++) {
    const float* __restrict dyi = dy + i * c;
    const float* __restrict yi = y + i * c;
    float* __restrict dxi = dx + i * c;
    for (int64_t k = 0; k < c; k++) dxi[k] = relu_grad_of(dyi[k], yi[k]) * scale[k];
  }
}

/**
 * Runs rows_fn(offset_rows, rows, row_len, a, b) over x viewed as [m, c] in rows of the period's
 * length (split across threads), then the rows left over with the plain vectors.
 */
template <typename F>
void per_channel(int64_t m, int64_t c, const float* va, const float* vb, int threads, F rows_fn) {
  const Period p(m, c, va, vb);
  const int64_t big = m / p.k;
  split_rows(big, p.len, threads, [&](int64_t b, int64_t e, int) { rows_fn(b * p.len, e - b, p.len, p.pa(va), p.pb(vb)); });
  if (big * p.k < m) rows_fn(big * p.len, m - big * p.k, c, va, vb);
}

/**
 * y = act(x·mul + add [+ residual]) per channel over x viewed as [m, c], rounded op by op as the
 * separate Multiply, Add, Add and Relu kernels round (the build does not contract to FMA).
 */
void apply_scale_shift(const float* x, const float* mul, const float* add, const float* residual, bool relu, float* y,
                       int64_t m, int64_t c, int threads) {
  per_channel(m, c, mul, add, threads, [&](int64_t off, int64_t rows, int64_t len, const float* pm, const float* pa) {
    scale_shift_rows(x + off, pm, pa, residual != nullptr ? residual + off : nullptr, relu, y + off, rows, len);
  });
}

}  // namespace

void binary(BinaryOp op, const float* a, const float* b, float* out, int rank, const int64_t* dims, const int64_t* sa,
            const int64_t* sb) {
  if (rank < 1 || rank > 8) throw std::invalid_argument("binary: rank must be 1..8");
  switch (op) {
    case BinaryOp::Add: return binary_impl([](float x, float y) { return x + y; }, a, b, out, rank, dims, sa, sb);
    case BinaryOp::Sub: return binary_impl([](float x, float y) { return x - y; }, a, b, out, rank, dims, sa, sb);
    case BinaryOp::Mul: return binary_impl([](float x, float y) { return x * y; }, a, b, out, rank, dims, sa, sb);
    case BinaryOp::Div: return binary_impl([](float x, float y) { return x / y; }, a, b, out, rank, dims, sa, sb);
  }
  throw std::invalid_argument("binary: unknown op");
}

namespace {
template <typename F>
void map_unary(F f, const float* x, float* y, int64_t n) {
#pragma omp parallel if (n >= kParallelMin)
  {
    // A private copy keeps captured constants in registers; read through the shared functor
    // they could alias y, and GCC gives up on vectorising.
    const F g = f;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = g(x[i]);
  }
}
}  // namespace

void unary(UnaryOp op, const float* x, float* y, int64_t n, double a, double b) {
  // Selects only (v == v is false for NaN): with -fno-trapping-math GCC vectorises these without
  // branches. A branch per element would mispredict half the time on random-sign activations.
  switch (op) {
    // Math.max(0, v): NaN kept, −0 → +0.
    case UnaryOp::Relu: return map_unary([](float v) { return relu_of(v); }, x, y, n);
    case UnaryOp::Step: {
      const float alpha = float(a);
      return map_unary([alpha](float v) { return v > 0.f ? 1.f : (v == v ? alpha : v); }, x, y, n);
    }
    case UnaryOp::Sign: return map_unary([](float v) { return v < 0.f ? -1.f : (v > 0.f ? 1.f : 0.f); }, x, y, n);
    case UnaryOp::Clip: {
      // The JS kernel compares in double and stores float(bound). Comparing against the nearest
      // floats gives the same outputs: no float lies strictly between a bound and its rounding,
      // so a float v beyond the bound is beyond (or equal to) its float, and equal gives the same
      // value either way (TF.js requires min <= max).
      const float lo = float(a), hi = float(b);
      return map_unary([lo, hi](float v) { return v > hi ? hi : (v < lo ? lo : v); }, x, y, n);
    }
  }
  throw std::invalid_argument("unary: unknown op");
}

void relu_grad(const float* dy, const float* x, float* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dx[i] = relu_grad_of(dy[i], x[i]);  // vectorised selects, see unary()
}

void reduce_sum_middle(const float* x, float* out, int64_t a, int64_t r, int64_t c, double scale) {
  const int threads = max_threads();
  if (a >= 2 * int64_t(threads) || a * r * c < kParallelMin) {
    // Enough independent outputs (or too little work): one thread per block of `a`.
#pragma omp parallel for schedule(static) if (a * r * c >= kParallelMin)
    for (int64_t i = 0; i < a; i++) {
      const float* xi = x + i * r * c;
      float* oi = out + i * c;
      if (c == 1) {
        double s = 0;
        for (int64_t j = 0; j < r; j++) s += xi[j];
        oi[0] = float(s * scale);
      } else {
        std::vector<double> acc(static_cast<size_t>(c), 0.0);
        for (int64_t j = 0; j < r; j++)
          for (int64_t k = 0; k < c; k++) acc[size_t(k)] += xi[j * c + k];
        for (int64_t k = 0; k < c; k++) oi[k] = float(acc[size_t(k)] * scale);
      }
    }
    return;
  }
  // Few outputs, long reduction (e.g. Σ over N·H·W of NHWC): split the reduced axis.
  for (int64_t i = 0; i < a; i++) {
    const float* xi = x + i * r * c;
    Partials p(threads, c, 1);
    split_rows(r, c, threads, [&](int64_t b, int64_t e, int t) {
      double* acc = p.at(t, 0);
      for (int64_t j = b; j < e; j++)
        for (int64_t k = 0; k < c; k++) acc[k] += xi[j * c + k];
    });
    for (int64_t k = 0; k < c; k++) out[i * c + k] = float(p.total(0, k) * scale);
  }
}

void bn_train_forward(const float* x, const float* scale, const float* offset, float* y, float* mean, float* var,
                      int64_t m, int64_t c, float eps, const float* residual, bool relu) {
  if (m <= 0) throw std::invalid_argument("bn_train_forward: empty batch");
  const int threads = max_threads();
  Partials p(threads, c, 2);
  split_rows(m, c, threads, [&](int64_t b, int64_t e, int t) {
    double* s = p.at(t, 0);
    double* s2 = p.at(t, 1);
    for (int64_t i = b; i < e; i++) {
      const float* xi = x + i * c;
      for (int64_t k = 0; k < c; k++) {
        const double v = xi[k];
        s[k] += v;
        s2[k] += v * v;
      }
    }
  });
  std::vector<float> mul(static_cast<size_t>(c)), add(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; k++) {
    const double mu = p.total(0, k) / double(m);
    const double v = std::max(0.0, p.total(1, k) / double(m) - mu * mu);  // biased (÷ m)
    mean[k] = float(mu);
    var[k] = float(v);
    const double g = double(scale[k]) / std::sqrt(double(var[k]) + double(eps));
    mul[size_t(k)] = float(g);
    add[size_t(k)] = float(double(offset[k]) - double(mean[k]) * g);
  }
  apply_scale_shift(x, mul.data(), add.data(), residual, relu, y, m, c, threads);
}

void bn_train_backward(const float* dy_in, const float* x, const float* scale, const float* mean, const float* var,
                       float* dx, float* dscale, float* doffset, int64_t m, int64_t c, float eps, const float* y_act) {
  if (m <= 0) throw std::invalid_argument("bn_train_backward: empty batch");
  const int threads = max_threads();
  Partials p(threads, c, 2);
  split_rows(m, c, threads, [&](int64_t b, int64_t e, int t) {
    double* sdy = p.at(t, 0);
    double* sdyx = p.at(t, 1);
    for (int64_t i = b; i < e; i++) {
      const float* dyi = dy_in + i * c;
      const float* xi = x + i * c;
      const float* ai = y_act != nullptr ? y_act + i * c : nullptr;
      for (int64_t k = 0; k < c; k++) {
        const float d = ai != nullptr ? relu_grad_of(dyi[k], ai[k]) : dyi[k];
        sdy[k] += d;
        sdyx[k] += double(d) * double(xi[k] - mean[k]);
      }
    }
  });
  // dx = g·dy + p·x + q with g = scale·invstd, p = −g·invstd·dScale/M, q = −g·dOffset/M − p·mean:
  // the closed form scale·invstd/M·(M·dy − dOffset − x̂·dScale) expanded per channel.
  std::vector<float> cg(static_cast<size_t>(c)), cp(static_cast<size_t>(c)), cq(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; k++) {
    const double invstd = 1.0 / std::sqrt(double(var[k]) + double(eps));
    const double dof = p.total(0, k), dsc = p.total(1, k) * invstd;
    doffset[k] = float(dof);
    dscale[k] = float(dsc);
    const double g = double(scale[k]) * invstd;
    const double pk = -g * invstd * dsc / double(m);
    cg[size_t(k)] = float(g);
    cp[size_t(k)] = float(pk);
    cq[size_t(k)] = float(-g * dof / double(m) - pk * double(mean[k]));
  }
  split_rows(m, c, threads, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; i++) {
      const float* dyi = dy_in + i * c;
      const float* xi = x + i * c;
      const float* ai = y_act != nullptr ? y_act + i * c : nullptr;
      float* dxi = dx + i * c;
      if (ai != nullptr) {
        for (int64_t k = 0; k < c; k++) dxi[k] = cg[size_t(k)] * relu_grad_of(dyi[k], ai[k]) + cp[size_t(k)] * xi[k] + cq[size_t(k)];
      } else {
        for (int64_t k = 0; k < c; k++) dxi[k] = cg[size_t(k)] * dyi[k] + cp[size_t(k)] * xi[k] + cq[size_t(k)];
      }
    }
  });
}

void bn_infer(const float* x, const float* mean, const float* var, const float* scale, const float* offset, float* y,
              int64_t m, int64_t c, float eps) {
  std::vector<float> mul(static_cast<size_t>(c)), add(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; k++) {
    const double g = (scale != nullptr ? double(scale[k]) : 1.0) / std::sqrt(double(var[k]) + double(eps));
    mul[size_t(k)] = float(g);
    add[size_t(k)] = float((offset != nullptr ? double(offset[k]) : 0.0) - double(mean[k]) * g);
  }
  apply_scale_shift(x, mul.data(), add.data(), nullptr, false, y, m, c, max_threads());
}

void bn_eval_forward(const float* x, const float* gamma, const float* beta, const float* mean, const float* var, float eps,
                     const float* residual, bool relu, float* y, float* scale, float* shift, int64_t m, int64_t c) {
  for (int64_t k = 0; k < c; k++) {
    // As the composed ops round: Add (float), Rsqrt (1/√ in double, as TF.js's cpu kernel), Multiply, Multiply, Sub.
    const float ve = var[k] + eps;
    const float rs = float(1.0 / std::sqrt(double(ve)));
    scale[k] = gamma[k] * rs;
    shift[k] = beta[k] - mean[k] * scale[k];
  }
  apply_scale_shift(x, scale, shift, residual, relu, y, m, c, max_threads());
}

void scale_shift_relu_grad(const float* dy, const float* y, const float* scale, float* dx, int64_t m, int64_t c) {
  per_channel(m, c, scale, nullptr, max_threads(), [&](int64_t off, int64_t rows, int64_t len, const float* ps, const float*) {
    relu_grad_scale_rows(dy + off, y + off, ps, dx + off, rows, len);
  });
}

void sgd_step(const float* theta, const float* grad, const float* buf, float* theta_out, float* buf_out, int64_t n,
              float lr, float momentum, float weight_decay, bool decay, bool mom) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    // As the composed ops round: Multiply, Add (decay); Multiply, Add (momentum); Multiply, Sub.
    const float d = decay ? grad[i] + theta[i] * weight_decay : grad[i];
    float u = d;
    if (mom) {
      u = buf != nullptr ? buf[i] * momentum + d : d;
      buf_out[i] = u;
    }
    theta_out[i] = theta[i] - u * lr;
  }
}

}  // namespace rift

// Memory-bound kernels written by hand: broadcasting binary ops, ReLU/Step, middle-axis sums and
// training/inference batch norm. They are simple streaming loops (the compiler vectorises the
// inner loops); OpenMP splits them over the same threads oneDNN uses. Sums accumulate in double,
// like the TF.js cpu backend (whose JS accumulators are doubles), so results agree closely.
#include <algorithm>
#include <cmath>
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

template <typename F>
void binary_impl(F f, const float* a, const float* b, float* out, int rank, const int64_t* dims, const int64_t* sa,
                 const int64_t* sb) {
  const int64_t inner = dims[rank - 1], isa = sa[rank - 1], isb = sb[rank - 1];
  int64_t rows = 1;
  for (int d = 0; d < rank - 1; d++) rows *= dims[d];
  const int64_t chunk = std::min(inner, kChunk);
  const int64_t nchunks = chunk == 0 ? 0 : (inner + chunk - 1) / chunk;
  const int64_t tasks = rows * nchunks;
#pragma omp parallel for schedule(static) if (rows * inner >= kParallelMin)
  for (int64_t t = 0; t < tasks; t++) {
    const int64_t row = t / nchunks, c0 = (t % nchunks) * chunk, len = std::min(chunk, inner - c0);
    int64_t oa = 0, ob = 0, r = row;
    for (int d = rank - 2; d >= 0; d--) {
      const int64_t i = r % dims[d];
      r /= dims[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
    const float* pa = a + oa + c0 * isa;
    const float* pb = b + ob + c0 * isb;
    float* po = out + row * inner + c0;
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
}

/** Per-thread double accumulators [threads][c], zeroed; freed with the object. */
struct Partials {
  int threads;
  int64_t c;
  std::vector<double> v;
  Partials(int t, int64_t c_, int arrays) : threads(t), c(c_), v(size_t(t) * size_t(c_) * size_t(arrays), 0.0) {}
  double* at(int thread, int array) { return v.data() + (size_t(array) * threads + thread) * c; }
  /** Σ over threads of array `array`, channel j. */
  double total(int array, int64_t j) const {
    double s = 0;
    for (int t = 0; t < threads; t++) s += v[(size_t(array) * threads + t) * c + j];
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

void relu(const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.f ? 0.f : x[i];  // NaN < 0 is false: NaN kept
}

void step(const float* x, float* y, int64_t n, float alpha) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.f ? 1.f : (std::isnan(x[i]) ? x[i] : alpha);
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
                      int64_t m, int64_t c, float eps) {
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
  split_rows(m, c, threads, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; i++) {
      const float* xi = x + i * c;
      float* yi = y + i * c;
      for (int64_t k = 0; k < c; k++) yi[k] = xi[k] * mul[size_t(k)] + add[size_t(k)];
    }
  });
}

void bn_train_backward(const float* dy, const float* x, const float* scale, const float* mean, const float* var,
                       float* dx, float* dscale, float* doffset, int64_t m, int64_t c, float eps) {
  if (m <= 0) throw std::invalid_argument("bn_train_backward: empty batch");
  const int threads = max_threads();
  Partials p(threads, c, 2);
  split_rows(m, c, threads, [&](int64_t b, int64_t e, int t) {
    double* sdy = p.at(t, 0);
    double* sdyx = p.at(t, 1);
    for (int64_t i = b; i < e; i++) {
      const float* dyi = dy + i * c;
      const float* xi = x + i * c;
      for (int64_t k = 0; k < c; k++) {
        sdy[k] += dyi[k];
        sdyx[k] += double(dyi[k]) * double(xi[k] - mean[k]);
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
      const float* dyi = dy + i * c;
      const float* xi = x + i * c;
      float* dxi = dx + i * c;
      for (int64_t k = 0; k < c; k++) dxi[k] = cg[size_t(k)] * dyi[k] + cp[size_t(k)] * xi[k] + cq[size_t(k)];
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
  split_rows(m, c, max_threads(), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; i++) {
      const float* xi = x + i * c;
      float* yi = y + i * c;
      for (int64_t k = 0; k < c; k++) yi[k] = xi[k] * mul[size_t(k)] + add[size_t(k)];
    }
  });
}

}  // namespace rift

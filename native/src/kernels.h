// Native kernels of rift-bn's 'onednn' TF.js backend.
//
// Every function works on caller-owned float32 buffers (the TF.js cpu backend's TypedArrays,
// passed zero-copy through Node-API) and never keeps a pointer to them after returning.
// Layout conventions are TF.js's: activations NHWC, conv filters HWIO ([kh][kw][ci][co]),
// row-major matrices. Shapes are validated by the Node-API layer (addon.cc) before calling in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace rift {

// ---------------------------------------------------------------------------------------------
// oneDNN primitives (dnn.cc). Primitives are created once per distinct shape/attribute set and
// cached; the process owns the cache until clear_cache() or a thread-count change.

/** Geometry of a 2-D convolution, NHWC activations and HWIO filter, dilation 1. */
struct ConvGeom {
  int64_t n, ih, iw, ic, oc, kh, kw, sh, sw;
  int64_t pt, pb, pl, pr;  // explicit padding, top/bottom/left/right (>= 0)
  int64_t oh, ow;
  std::string key() const;
};

/** y[n,oh,ow,oc] = Σ x·w (+ bias[oc]) (then ReLU if relu). bias may be null. */
void conv_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, bool relu, float* y);
/** dx[n,ih,iw,ic] = gradient of conv_forward w.r.t. x for output gradient dy. */
void conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx);
/** dw[kh,kw,ic,oc] = gradient of conv_forward w.r.t. w for input x and output gradient dy. */
void conv_backward_weights(const ConvGeom& g, const float* x, const float* dy, float* dw);

/** Geometry of a 2-D average pooling over NHWC (padding excluded from the average, as TF). */
struct PoolGeom {
  int64_t n, ih, iw, c, kh, kw, sh, sw;
  int64_t pt, pb, pl, pr;
  int64_t oh, ow;
  std::string key() const;
};
void avg_pool_forward(const PoolGeom& g, const float* x, float* y);
void avg_pool_backward(const PoolGeom& g, const float* dy, float* dx);

/**
 * Batched row-major GEMM: for each b < batch, C_b = op(A_b)·op(B_b), where op transposes when
 * asked. A_b = a + (batchA == 1 ? 0 : b)·M·K (likewise B), so a batch of 1 broadcasts.
 */
void matmul(const float* a, const float* b, float* c, int64_t batch, int64_t batchA, int64_t batchB,
            int64_t m, int64_t n, int64_t k, bool transA, bool transB);

void set_threads(int n);
int get_threads();
void clear_cache();
size_t cache_entries();
/** "major.minor.patch", the CPU runtime ("omp", "tbb", "seq", ...) and the best ISA oneDNN detected. */
std::string dnnl_version();
std::string dnnl_runtime();
std::string dnnl_isa();

// ---------------------------------------------------------------------------------------------
// Hand-written memory-bound loops (loops.cc), OpenMP-parallel when the build has OpenMP.

enum class BinaryOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3 };

/**
 * Broadcasting binary op on a collapsed shape: out has dims[0..rank-1] (row-major, contiguous);
 * operand a (b) has stride sa[d] (sb[d]) along dim d, 0 where it is broadcast. rank <= 8.
 */
void binary(BinaryOp op, const float* a, const float* b, float* out, int rank, const int64_t* dims,
            const int64_t* sa, const int64_t* sb);

/**
 * Element-wise y = op(x) with the TF.js cpu kernels' semantics:
 *  Relu: Math.max(0, x) (NaN kept, −0 → +0);  Step: x > 0 ? 1 : a, NaN kept;  Sign: −1 / 0 / 1, NaN → 0;
 *  Clip: x > b ? b : (x < a ? a : x), NaN kept (same outputs as the JS kernel's double compare).
 */
enum class UnaryOp : int { Relu = 0, Step = 1, Sign = 2, Clip = 3 };
void unary(UnaryOp op, const float* x, float* y, int64_t n, double a, double b);
/** dx = dy · step(x) in one pass (ReLU's gradient), with the same NaN/Inf results as the product. */
void relu_grad(const float* dy, const float* x, float* dx, int64_t n);

/** x viewed as [a, r, c]: out[a, c] = scale · Σ_r x[a, r, c], accumulated in double. */
void reduce_sum_middle(const float* x, float* out, int64_t a, int64_t r, int64_t c, double scale);

/**
 * Batch-norm training forward over x viewed as [m, c]: per-channel batch mean and biased
 * variance (÷ m), y = (x − mean)/sqrt(var + eps)·scale + offset, then + residual[m, c] when it
 * is not null, then ReLU when relu (each rounded as the separate ops round).
 */
void bn_train_forward(const float* x, const float* scale, const float* offset, float* y, float* mean,
                      float* var, int64_t m, int64_t c, float eps, const float* residual, bool relu);
/**
 * Closed-form backward of bn_train_forward given its saved mean/var. With y_act (the output of a
 * forward with relu) the incoming gradient is first masked by ReLU's gradient, dy·step(y_act),
 * as the separate ReLU gradient would do it.
 */
void bn_train_backward(const float* dy, const float* x, const float* scale, const float* mean, const float* var,
                       float* dx, float* dscale, float* doffset, int64_t m, int64_t c, float eps, const float* y_act);
/**
 * Inference batch norm with running statistics, then [+ residual] and [ReLU]: scale = γ·(1/√(var+eps)),
 * shift = β − mean·scale (written to scale/shift [c]), y = act(x·scale + shift [+ residual]), each
 * step rounded as the composed TF.js ops round it.
 */
void bn_eval_forward(const float* x, const float* gamma, const float* beta, const float* mean, const float* var, float eps,
                     const float* residual, bool relu, float* y, float* scale, float* shift, int64_t m, int64_t c);
/** dx = (dy·step(y))·scale: the x-gradient of bn_eval_forward with relu, from its output y and scale. */
void scale_shift_relu_grad(const float* dy, const float* y, const float* scale, float* dx, int64_t m, int64_t c);
/** Inference batch norm with given statistics; scale/offset may be null (1 / 0). */
void bn_infer(const float* x, const float* mean, const float* var, const float* scale, const float* offset,
              float* y, int64_t m, int64_t c, float eps);

/**
 * One step of PyTorch's SGD (dampening 0, not Nesterov) on n values: d = grad + θ·weight_decay
 * when decay, else grad; when mom, buf_out = buf·momentum + d (= d when buf is null: the first
 * step) and the update is buf_out, otherwise d (buf_out unused); theta_out = θ − update·lr. Each
 * step rounded as the composed TF.js ops round it. decay and mom are the caller's "≠ 0" of the
 * unrounded hyperparameters, as the composed ops decide them: a value that rounds to a float 0
 * still runs its term (θ·0 is NaN for an infinite θ).
 */
void sgd_step(const float* theta, const float* grad, const float* buf, float* theta_out, float* buf_out, int64_t n,
              float lr, float momentum, float weight_decay, bool decay, bool mom);

}  // namespace rift

// The row-wise part of the fused head's losses on one CPU core, float32: cross-entropy (objectives._HeadCrossEntropy)
// and distillation (objectives._HeadDistill), one call per block of rows (babysweep/lm/cpu_head.py builds and calls
// them). Why: with torch's operations the cross-entropy is four passes over a [256, vocab] block (max, subtract, exp2,
// sum), a gather, a scatter and two scalings, each a separate call, and the distillation loss about twenty; here a
// row of the vocabulary (a few kilobytes) is brought into L1 once and swept three times there.
//
// head_softmax_gradient: a block row x holds base-2 logits. Per row: m = max x, e = 2^(x - m), sum = sum e, the row's cross-entropy in bits
// m + log2(sum) - x[target], and x becomes s * (e / sum - onehot(target)): d loss / d logits for a row of weight s.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_vector.h"

namespace {

inline float row_max(const float* x, int64_t vocab) {
  int64_t j = 0;
  v16 top = splat(-INFINITY);
  for (; j + W <= vocab; j += W) top = vmax(top, load(x + j));
  float m = hmax(top);
  for (; j < vocab; ++j) m = std::max(m, x[j]);
  return m;
}

}  // namespace

// block: rows x vocab base-2 logits, rows `stride` floats apart, replaced by the gradient; target: one class per row;
// weight: each row's weight s (0 for rows the loss ignores); row_loss: each row's cross-entropy in bits (before s).
// Returns 1 if a target is outside [0, vocab), with nothing written past that row, else 0.
extern "C" int head_softmax_gradient(float* block, int64_t rows, int64_t vocab, int64_t stride, const int64_t* target,
                                     const float* weight, float* row_loss) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = target[r];
    if (t < 0 || t >= vocab) return 1;
    float* x = block + r * stride;
    const float m = row_max(x, vocab);
    const float picked = x[t];
    v16 sums = splat(0.0f);
    int64_t j = 0;
    for (; j + W <= vocab; j += W) {
      v16 e = exp2_nonpositive(load(x + j) - m);
      store(x + j, e);
      sums += e;
    }
    float sum = hsum(sums);
    for (; j < vocab; ++j) {
      x[j] = std::exp2(x[j] - m);
      sum += x[j];
    }
    row_loss[r] = m + std::log2(sum) - picked;
    const float factor = weight[r] / sum;
    for (j = 0; j + W <= vocab; j += W) store(x + j, load(x + j) * factor);
    for (; j < vocab; ++j) x[j] *= factor;
    x[t] -= weight[r];
  }
  return 0;
}

// The distilled head's rows (objectives._HeadDistill, ensemble "logits"): block holds the student's natural logits z,
// teacher the teachers' mean logits already divided by T (u), both rows `stride` / `tstride` floats apart. Per row,
// with p = softmax(z), q = softmax(z / T), r = softmax(u): ce_rows = -log p[target], kl_rows = KL(r || q), and the
// block becomes b * (q - r) + a * (p - onehot(target)), a and b the row's weights of the two terms (0 where a term
// does not count the row). The teacher row is overwritten (it holds r's exponentials afterwards). Returns 1 if a
// target is outside [0, vocab), with nothing written past that row, else 0.
extern "C" int head_distill_gradient(float* block, float* teacher, int64_t rows, int64_t vocab, int64_t stride,
                                     int64_t tstride, const int64_t* target, const float* a, const float* b,
                                     float inv_t, float* ce_rows, float* kl_rows) {
  std::vector<float> tempered(vocab);  // exp((z - max z) / T)
  float* et = tempered.data();
  const v16 it = splat(inv_t);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = target[r];
    if (t < 0 || t >= vocab) return 1;
    float* z = block + r * stride;
    float* u = teacher + r * tstride;
    const float mz = row_max(z, vocab), mu = row_max(u, vocab);
    const float picked = z[t];
    // One sweep: the three rows of exponentials, their sums, and sum_j e_u (u_j - mu - (z_j - mz) / T) for the KL.
    v16 s1 = splat(0.0f), st = splat(0.0f), su = splat(0.0f), sk = splat(0.0f);
    int64_t j = 0;
    for (; j + W <= vocab; j += W) {
      const v16 x = load(z + j) - mz, y = load(u + j) - mu;
      const v16 e1 = exp_nonpositive(x), e2 = exp_nonpositive(x * it), e3 = exp_nonpositive(y);
      store(z + j, e1); store(et + j, e2); store(u + j, e3);
      s1 += e1; st += e2; su += e3; sk += e3 * (y - x * it);
    }
    float sum1 = hsum(s1), sumt = hsum(st), sumu = hsum(su), kl = hsum(sk);
    for (; j < vocab; ++j) {
      const float x = z[j] - mz, y = u[j] - mu;
      z[j] = std::exp(x); et[j] = std::exp(x * inv_t); u[j] = std::exp(y);
      sum1 += z[j]; sumt += et[j]; sumu += u[j]; kl += u[j] * (y - x * inv_t);
    }
    ce_rows[r] = mz + std::log(sum1) - picked;
    kl_rows[r] = kl / sumu - std::log(sumu) + std::log(sumt);  // sum_j r_j (log r_j - log q_j), as sum_j r_j = 1
    const float fp = a[r] / sum1, fq = b[r] / sumt, fr = b[r] / sumu;
    const v16 vp = splat(fp), vq = splat(fq), vr = splat(fr);
    for (j = 0; j + W <= vocab; j += W) store(z + j, load(et + j) * vq - load(u + j) * vr + load(z + j) * vp);
    for (; j < vocab; ++j) z[j] = et[j] * fq - u[j] * fr + z[j] * fp;
    z[t] -= a[r];
  }
  return 0;
}

// Causal self-attention for small heads on one CPU core, float32, forward and backward (babysweep/lm/cpu_attention.py
// builds and calls it under train.compile). Why: at head size 16 torch's CPU flash kernel makes hundreds of tiny GEMM
// calls per layer; here one (batch, head) is a few kilobytes that stay in L1, and every product is a register tile.
//
// A tensor of shape [B, H, S, D] is passed as a pointer and its batch, head and row strides (in elements); the D
// values of a row are contiguous. D is 16, 32 or 64. The vectors are cpu_vector.h's, 16 floats.
//
// Forward: per row i, scores s_j = scale q_i . k_j for j <= i, P = softmax(s), o_i = sum_j P_j v_j, and the row's
// log-sum-exp L_i is kept. Backward (as flash attention's): P again from L, dV += P^T dO, dP = dO V^T,
// dS = P * (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_vector.h"

namespace {

constexpr int R = 4;   // query rows per tile

struct Strides { int64_t b, h, s; };

// rows[r][j] = sum_d a[i0 + r][d] * t[d][j] * mul for the tile's R rows (a row past nr gives 0) and columns j < cols
// (a multiple of W; t is [D][Sp] with Sp >= cols), NB column blocks of W at a time.
template <int D, int NB>
inline void block_products(const float* a, int64_t as, int i0, int nr, const float* t, int Sp, int j0, float mul,
                           float* rows) {
  v16 acc[R][NB] = {};
  float ar[R][D];
  for (int r = 0; r < R; ++r)
    for (int d = 0; d < D; ++d) ar[r][d] = r < nr ? a[(i0 + r) * as + d] * mul : 0.0f;
  for (int d = 0; d < D; ++d) {
    v16 kv[NB];
    for (int c = 0; c < NB; ++c) kv[c] = load(t + d * Sp + j0 + c * W);
    for (int r = 0; r < R; ++r) {
      const v16 qd = splat(ar[r][d]);
      for (int c = 0; c < NB; ++c) acc[r][c] += qd * kv[c];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NB; ++c) store(rows + r * Sp + j0 + c * W, acc[r][c]);
}

template <int D>
inline void tile_products(const float* a, int64_t as, int i0, int nr, const float* t, int Sp, int cols, float mul,
                          float* rows) {
  int j0 = 0;
  for (; j0 + 4 * W <= cols; j0 += 4 * W) block_products<D, 4>(a, as, i0, nr, t, Sp, j0, mul, rows);
  switch ((cols - j0) / W) {
    case 3: block_products<D, 3>(a, as, i0, nr, t, Sp, j0, mul, rows); break;
    case 2: block_products<D, 2>(a, as, i0, nr, t, Sp, j0, mul, rows); break;
    case 1: block_products<D, 1>(a, as, i0, nr, t, Sp, j0, mul, rows); break;
  }
}

// out[r] = sum_{j < cols} rows[r][j] * m[j] for the R rows (m: [S, D] rows with stride ms), into acc.
template <int D>
inline void rows_times(const float* rows, int Sp, int cols, const float* m, int64_t ms, v16 (&acc)[R][D / W]) {
  v16 odd[R][D / W] = {};
  for (int r = 0; r < R; ++r) for (int c = 0; c < D / W; ++c) acc[r][c] = v16{};
  int j = 0;
  for (; j + 1 < cols; j += 2) {  // two independent sums per row: even and odd j
    v16 m0[D / W], m1[D / W];
    for (int c = 0; c < D / W; ++c) { m0[c] = load(m + j * ms + c * W); m1[c] = load(m + (j + 1) * ms + c * W); }
    for (int r = 0; r < R; ++r) {
      const v16 p0 = splat(rows[r * Sp + j]), p1 = splat(rows[r * Sp + j + 1]);
      for (int c = 0; c < D / W; ++c) { acc[r][c] += p0 * m0[c]; odd[r][c] += p1 * m1[c]; }
    }
  }
  for (; j < cols; ++j)
    for (int c = 0; c < D / W; ++c) {
      const v16 mv = load(m + j * ms + c * W);
      for (int r = 0; r < R; ++r) acc[r][c] += splat(rows[r * Sp + j]) * mv;
    }
  for (int r = 0; r < R; ++r) for (int c = 0; c < D / W; ++c) acc[r][c] += odd[r][c];
}

// One step of a 16 x 16 transpose held in 16 vectors: rows a and a + s (bit s of a clear) exchange their
// off-diagonal s x s blocks: row a keeps its positions p with bit s clear and takes row a + s's p - s elsewhere;
// row a + s keeps its positions with bit s set and takes row a's p + s elsewhere. Steps s = 8, 4, 2, 1 transpose.
#define TRANSPOSE_STEP(s, KEEP_LOW, KEEP_HIGH)                                 \
  for (int a = 0; a < W; ++a)                                                  \
    if (!(a & s)) {                                                            \
      const v16 x = rows[a], y = rows[a + s];                                  \
      rows[a] = __builtin_shufflevector(x, y, UNPACK KEEP_LOW);                \
      rows[a + s] = __builtin_shufflevector(x, y, UNPACK KEEP_HIGH);           \
    }
#define UNPACK(...) __VA_ARGS__

inline void transpose16(v16 (&rows)[W]) {
  TRANSPOSE_STEP(8, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
                  (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
  TRANSPOSE_STEP(4, (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
                  (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
  TRANSPOSE_STEP(2, (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
                  (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
  TRANSPOSE_STEP(1, (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
                  (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
}
#undef TRANSPOSE_STEP
#undef UNPACK

// t[d][j] = m[j][d] for j < S (m's rows ms apart), 0 for S <= j < Sp: 16 x 16 blocks through registers.
inline void transpose_into(float* t, const float* m, int64_t ms, int S, int Sp, int D) {
  for (int j0 = 0; j0 < Sp; j0 += W)
    for (int d0 = 0; d0 < D; d0 += W) {
      v16 rows[W];
      for (int j = 0; j < W; ++j) rows[j] = j0 + j < S ? load(m + (j0 + j) * ms + d0) : v16{};
      transpose16(rows);
      for (int d = 0; d < W; ++d) store(t + (d0 + d) * Sp + j0, rows[d]);
    }
}

// The tile's rows hold scores for columns < cols. Each row r keeps columns j <= i0 + r and becomes
// exp(score - shift[r]), 0 above the diagonal. Without `shift` the shift is the row's maximum and the row's sum of
// exps goes to sums[r]. Rows are handled together so that their reductions overlap.
inline void exp_rows(float* rows, int Sp, int i0, int nr, int cols, const float* shift, float* shifts, float* sums) {
  v16 iota;
  for (int t = 0; t < W; ++t) iota[t] = float(t);
  const int last = cols - W;  // only the last block crosses the diagonal (R <= W)
  float m[R];
  if (shift) {
    for (int r = 0; r < nr; ++r) m[r] = shift[r];
  } else {
    v16 mx[R];
    for (int r = 0; r < R; ++r) mx[r] = splat(-INFINITY);
    for (int j = 0; j < cols; j += W)
      for (int r = 0; r < nr; ++r) {
        v16 x = load(rows + r * Sp + j);
        if (j == last) x = iota + float(j) > float(i0 + r) ? splat(-INFINITY) : x;
        mx[r] = vmax(mx[r], x);
      }
    for (int r = 0; r < nr; ++r) m[r] = hmax(mx[r]);
  }
  v16 sum[R] = {};
  for (int j = 0; j < cols; j += W)
    for (int r = 0; r < nr; ++r) {
      v16 e = exp_nonpositive(load(rows + r * Sp + j) - m[r]);
      if (j == last) e = iota + float(j) > float(i0 + r) ? splat(0.0f) : e;
      store(rows + r * Sp + j, e);
      sum[r] += e;
    }
  if (!shift)
    for (int r = 0; r < nr; ++r) { shifts[r] = m[r]; sums[r] = hsum(sum[r]); }
}

template <int D>
void forward_head(const float* q, Strides qs, const float* k, Strides ks, const float* v, Strides vs, float* o,
                  Strides os, float* lse, int S, float scale, std::vector<float>& work) {
  const int Sp = (S + W - 1) / W * W;
  work.resize(size_t(D) * Sp + R * Sp);
  float* kt = work.data();
  float* rows = kt + size_t(D) * Sp;
  transpose_into(kt, k, ks.s, S, Sp, D);
  for (int i0 = 0; i0 < S; i0 += R) {
    const int nr = std::min(R, S - i0);
    const int cols = (i0 + nr + W - 1) / W * W;  // causal: columns up to the tile's last row
    tile_products<D>(q, qs.s, i0, nr, kt, Sp, cols, scale, rows);
    float m[R], sums[R];
    exp_rows(rows, Sp, i0, nr, cols, nullptr, m, sums);
    for (int r = nr; r < R; ++r) std::fill(rows + r * Sp, rows + r * Sp + cols, 0.0f);
    v16 acc[R][D / W];
    rows_times<D>(rows, Sp, std::min(cols, S), v, vs.s, acc);
    for (int r = 0; r < nr; ++r) {
      lse[i0 + r] = m[r] + std::log(sums[r]);
      const v16 inv = splat(1.0f / sums[r]);
      for (int c = 0; c < D / W; ++c) store(o + (i0 + r) * os.s + c * W, acc[r][c] * inv);
    }
  }
}

template <int D>
void backward_head(const float* q, Strides qs, const float* k, Strides ks, const float* v, Strides vs, const float* o,
                   Strides os, const float* lse, const float* go, Strides gs, float* dq, float* dk, float* dv,
                   int64_t ds, int S, float scale, std::vector<float>& work) {
  // dq, dk, dv: [S, D] rows ds apart
  const int Sp = (S + W - 1) / W * W;
  work.resize(size_t(2 * D) * Sp + 2 * R * Sp + S);
  float* kt = work.data();
  float* vt = kt + size_t(D) * Sp;
  float* p = vt + size_t(D) * Sp;
  float* dp = p + R * Sp;
  float* delta = dp + R * Sp;
  transpose_into(kt, k, ks.s, S, Sp, D);
  transpose_into(vt, v, vs.s, S, Sp, D);
  for (int i = 0; i < S; ++i) {
    v16 s = v16{};
    for (int c = 0; c < D / W; ++c) s += load(go + i * gs.s + c * W) * load(o + i * os.s + c * W);
    delta[i] = hsum(s);
  }
  for (int j = 0; j < S; ++j) {
    std::memset(dk + j * ds, 0, sizeof(float) * D);
    std::memset(dv + j * ds, 0, sizeof(float) * D);
  }
  for (int i0 = 0; i0 < S; i0 += R) {
    const int nr = std::min(R, S - i0);
    const int cols = (i0 + nr + W - 1) / W * W;
    tile_products<D>(q, qs.s, i0, nr, kt, Sp, cols, scale, p);
    tile_products<D>(go, gs.s, i0, nr, vt, Sp, cols, 1.0f, dp);
    exp_rows(p, Sp, i0, nr, cols, lse + i0, nullptr, nullptr);  // P = exp(score - lse), 0 above the diagonal
    for (int r = 0; r < R; ++r) {
      float* pr = p + r * Sp;
      float* dr = dp + r * Sp;
      if (r >= nr) { std::fill(pr, pr + cols, 0.0f); std::fill(dr, dr + cols, 0.0f); continue; }
      const v16 di = splat(delta[i0 + r]);
      for (int j = 0; j < cols; j += W) store(dr + j, load(pr + j) * (load(dr + j) - di));  // dS
    }
    // dV[j] += sum_r P[r][j] dO[r];  dK[j] += scale * sum_r dS[r][j] Q[r]
    v16 gor[R][D / W], qr[R][D / W];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < D / W; ++c) {
        gor[r][c] = r < nr ? load(go + (i0 + r) * gs.s + c * W) : v16{};
        qr[r][c] = r < nr ? load(q + (i0 + r) * qs.s + c * W) * scale : v16{};
      }
    const int jmax = std::min(cols, S);
    for (int j = 0; j < jmax; ++j) {
      for (int c = 0; c < D / W; ++c) {
        static_assert(R == 4, "the sums below are written for four rows");
        const v16 a = (splat(p[j]) * gor[0][c] + splat(p[Sp + j]) * gor[1][c]) +
                      (splat(p[2 * Sp + j]) * gor[2][c] + splat(p[3 * Sp + j]) * gor[3][c]);
        const v16 b = (splat(dp[j]) * qr[0][c] + splat(dp[Sp + j]) * qr[1][c]) +
                      (splat(dp[2 * Sp + j]) * qr[2][c] + splat(dp[3 * Sp + j]) * qr[3][c]);
        store(dv + j * ds + c * W, load(dv + j * ds + c * W) + a);
        store(dk + j * ds + c * W, load(dk + j * ds + c * W) + b);
      }
    }
    // dQ[r] = scale * sum_j dS[r][j] K[j]
    v16 acc[R][D / W];
    rows_times<D>(dp, Sp, jmax, k, ks.s, acc);
    for (int r = 0; r < nr; ++r)
      for (int c = 0; c < D / W; ++c) store(dq + (i0 + r) * ds + c * W, acc[r][c] * scale);
  }
}

template <int D>
void forward_all(const float* q, Strides qs, const float* k, Strides ks, const float* v, Strides vs, float* o,
                 Strides os, float* lse, int B, int H, int S, float scale) {
  std::vector<float> work;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      forward_head<D>(q + b * qs.b + h * qs.h, qs, k + b * ks.b + h * ks.h, ks, v + b * vs.b + h * vs.h, vs,
                      o + b * os.b + h * os.h, os, lse + (int64_t(b) * H + h) * S, S, scale, work);
}

template <int D>
void backward_all(const float* q, Strides qs, const float* k, Strides ks, const float* v, Strides vs, const float* o,
                  Strides os, const float* lse, const float* go, Strides gs, float* dq, float* dk, float* dv,
                  Strides ds, int B, int H, int S, float scale) {
  std::vector<float> work;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t g = b * ds.b + h * ds.h;  // the three gradients share one layout
      backward_head<D>(q + b * qs.b + h * qs.h, qs, k + b * ks.b + h * ks.h, ks, v + b * vs.b + h * vs.h, vs,
                       o + b * os.b + h * os.h, os, lse + (int64_t(b) * H + h) * S, go + b * gs.b + h * gs.h, gs,
                       dq + g, dk + g, dv + g, ds.s, S, scale, work);
    }
}

}  // namespace

extern "C" {

// Returns 0, or -1 when the head size is not one this file was built for.
int causal_attention_forward(const float* q, const int64_t* qs, const float* k, const int64_t* ks, const float* v,
                             const int64_t* vs, float* o, const int64_t* os, float* lse, int B, int H, int S, int D,
                             float scale) {
  Strides a{qs[0], qs[1], qs[2]}, b{ks[0], ks[1], ks[2]}, c{vs[0], vs[1], vs[2]}, d{os[0], os[1], os[2]};
  switch (D) {
    case 16: forward_all<16>(q, a, k, b, v, c, o, d, lse, B, H, S, scale); return 0;
    case 32: forward_all<32>(q, a, k, b, v, c, o, d, lse, B, H, S, scale); return 0;
    case 64: forward_all<64>(q, a, k, b, v, c, o, d, lse, B, H, S, scale); return 0;
  }
  return -1;
}

int causal_attention_backward(const float* q, const int64_t* qs, const float* k, const int64_t* ks, const float* v,
                              const int64_t* vs, const float* o, const int64_t* os, const float* lse, const float* go,
                              const int64_t* gs, float* dq, float* dk, float* dv, const int64_t* dst, int B, int H,
                              int S, int D, float scale) {
  Strides a{qs[0], qs[1], qs[2]}, b{ks[0], ks[1], ks[2]}, c{vs[0], vs[1], vs[2]}, d{os[0], os[1], os[2]},
      g{gs[0], gs[1], gs[2]}, e{dst[0], dst[1], dst[2]};
  switch (D) {
    case 16: backward_all<16>(q, a, k, b, v, c, o, d, lse, go, g, dq, dk, dv, e, B, H, S, scale); return 0;
    case 32: backward_all<32>(q, a, k, b, v, c, o, d, lse, go, g, dq, dk, dv, e, B, H, S, scale); return 0;
    case 64: backward_all<64>(q, a, k, b, v, c, o, d, lse, go, g, dq, dk, dv, e, B, H, S, scale); return 0;
  }
  return -1;
}
}

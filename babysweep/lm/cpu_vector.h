// Vectors of 16 floats for babysweep's CPU kernels (cpu_attention.cpp, cpu_head.cpp), as GCC/Clang vector extensions:
// one AVX-512 register, two AVX2 ones or four NEON ones, whatever the compiler targets. lm/cpu_kernels.py hashes this
// file into each kernel's build key, so a change here rebuilds both.
#pragma once

#include <cstdint>
#include <cstring>

namespace {

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t i16 __attribute__((vector_size(64)));

constexpr int W = 16;  // floats per vector

inline v16 load(const float* p) { v16 v; std::memcpy(&v, p, sizeof v); return v; }
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }
inline v16 splat(float x) { return v16{} + x; }

// exp(r) 2^n for |r| <= ln2 / 2 and integer n <= 0: exp(r) by its Taylor series to r^7 (relative error below 1e-8 on
// that interval), 2^n built in the exponent bits.
inline v16 exp_reduced(v16 r, v16 n) {
  v16 p = splat(1.0f / 5040);
  p = p * r + 1.0f / 720; p = p * r + 1.0f / 120; p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;   p = p * r + 0.5f;       p = p * r + 1.0f;  p = p * r + 1.0f;
  i16 bits = (__builtin_convertvector(n, i16) + 127) << 23;
  v16 scale; std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// exp(x) for x <= 0 (arguments are shifted by their row maximum first): x = n ln2 + r (ln2 in two parts). Below -87
// (and for -inf) the result is 0.
inline v16 exp_nonpositive(v16 x) {
  const v16 lo = splat(-87.0f);
  i16 tiny = x < lo;
  x = x < lo ? lo : x;
  v16 n = x * 1.44269504088896341f;
  n = __builtin_convertvector(__builtin_convertvector(n - 0.5f, i16), v16);  // nearest integer: n <= 0 here
  v16 out = exp_reduced(x - n * 0.693145751953125f - n * 1.42860682030941723212e-6f, n);
  return tiny ? splat(0.0f) : out;
}

// 2^x for x <= 0: x = n + f with |f| <= 1/2, 2^f = exp(f ln2). Below -126 (and for -inf) the result is 0.
inline v16 exp2_nonpositive(v16 x) {
  const v16 lo = splat(-126.0f);
  i16 tiny = x < lo;
  x = x < lo ? lo : x;
  v16 n = __builtin_convertvector(__builtin_convertvector(x - 0.5f, i16), v16);  // nearest integer: n <= 0 here
  v16 out = exp_reduced((x - n) * 0.693147180559945309f, n);
  return tiny ? splat(0.0f) : out;
}

// Horizontal sum and maximum in four halving steps (a serial loop would be 15 dependent operations).
inline float hsum(v16 v) {
  v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3);
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1);
  v += __builtin_shufflevector(v, v, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);
  return v[0];
}
inline v16 vmax(v16 a, v16 b) { return a > b ? a : b; }
inline float hmax(v16 v) {
  v = vmax(v, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  v = vmax(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3));
  v = vmax(v, __builtin_shufflevector(v, v, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1));
  v = vmax(v, __builtin_shufflevector(v, v, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0));
  return v[0];
}

}  // namespace

// ggml tensor type ids and block layouts, exactly as ggml defines them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ts {

enum GgmlType : uint32_t {
  GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7,
  GGML_Q8_0 = 8, GGML_Q8_1 = 9, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13,
  GGML_Q6_K = 14, GGML_Q8_K = 15, GGML_IQ2_XXS = 16, GGML_IQ2_XS = 17, GGML_IQ3_XXS = 18,
  GGML_IQ1_S = 19, GGML_IQ4_NL = 20, GGML_IQ3_S = 21, GGML_IQ2_S = 22, GGML_IQ4_XS = 23,
  GGML_I8 = 24, GGML_I16 = 25, GGML_I32 = 26, GGML_I64 = 27, GGML_F64 = 28, GGML_IQ1_M = 29,
  GGML_BF16 = 30, GGML_TQ1_0 = 34, GGML_TQ2_0 = 35, GGML_MXFP4 = 39,
  GGML_TYPE_COUNT = 40,
};

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK5_0 = 32;
constexpr int QK5_1 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

typedef uint16_t ggml_half;

struct block_q4_0 { ggml_half d; uint8_t qs[QK4_0 / 2]; };
struct block_q8_0 { ggml_half d; int8_t qs[QK8_0]; };
struct block_q4_1 { ggml_half d; ggml_half m; uint8_t qs[QK4_1 / 2]; };  // x = q * d + m
// 5-bit quants: low 4 bits as in Q4_0, bit 4 of element j is bit j of qh (little endian).
struct block_q5_0 { ggml_half d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };  // x = (q - 16) * d
struct block_q5_1 { ggml_half d; ggml_half m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };  // x = q * d + m
// Activation block paired with Q4_1/Q5_1 (ggml's block_q8_1): s = d * sum(qs).
struct block_q8_1 { ggml_half d; ggml_half s; int8_t qs[QK8_1]; };
struct block_q4_K {
  ggml_half d;     // super-block scale for quantized scales
  ggml_half dmin;  // super-block scale for quantized mins
  uint8_t scales[K_SCALE_SIZE];  // scales and mins, quantized with 6 bits
  uint8_t qs[QK_K / 2];          // 4-bit quants
};
struct block_q5_K {
  ggml_half d;     // super-block scale for quantized scales
  ggml_half dmin;  // super-block scale for quantized mins
  uint8_t scales[K_SCALE_SIZE];  // scales and mins, quantized with 6 bits (as Q4_K)
  uint8_t qh[QK_K / 8];          // quants, high bit
  uint8_t qs[QK_K / 2];          // quants, low 4 bits
};
struct block_q6_K {
  uint8_t ql[QK_K / 2];      // quants, lower 4 bits
  uint8_t qh[QK_K / 4];      // quants, upper 2 bits
  int8_t scales[QK_K / 16];  // scales, quantized with 8 bits
  ggml_half d;               // super-block scale
};
// Activation block paired with K-quants (ggml's block_q8_K).
struct block_q8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };

static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 layout");
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 layout");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 layout");
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 layout");
static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
static_assert(sizeof(block_q5_K) == 176, "block_q5_K layout");
static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K layout");

struct GgmlTypeTraits {
  const char* name;   // "f32", "q4_0", ... ("unknown" for ids ggml does not define)
  int64_t block_size; // elements per block (1 for float types); 0 if unknown
  size_t type_size;   // bytes per block; 0 if unknown
  bool computable;    // the engine has kernels for it (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
                      // Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)
};

// Traits for every id ggml defines (sizes known even for types we cannot compute,
// so the reader can validate tensor extents of any well-formed file).
const GgmlTypeTraits& ggml_type_traits(uint32_t type);
// Bytes of a row of n elements; 0 if n is not a multiple of the block size.
size_t ggml_row_size(uint32_t type, int64_t n);

}  // namespace ts

#include "kernels/ggml_types.h"

namespace ts {

namespace {
struct Entry { uint32_t id; GgmlTypeTraits t; };
constexpr GgmlTypeTraits kUnknown{"unknown", 0, 0, false};
// Block sizes and byte sizes from ggml.c's type_traits table.
const Entry kTable[] = {
    {GGML_F32, {"f32", 1, 4, true}},          {GGML_F16, {"f16", 1, 2, true}},
    {GGML_Q4_0, {"q4_0", 32, 18, true}},      {GGML_Q4_1, {"q4_1", 32, 20, true}},
    {GGML_Q5_0, {"q5_0", 32, 22, true}},     {GGML_Q5_1, {"q5_1", 32, 24, true}},
    {GGML_Q8_0, {"q8_0", 32, 34, true}},      {GGML_Q8_1, {"q8_1", 32, 36, false}},
    {GGML_Q2_K, {"q2_K", 256, 84, false}},    {GGML_Q3_K, {"q3_K", 256, 110, false}},
    {GGML_Q4_K, {"q4_K", 256, 144, true}},    {GGML_Q5_K, {"q5_K", 256, 176, true}},
    {GGML_Q6_K, {"q6_K", 256, 210, true}},    {GGML_Q8_K, {"q8_K", 256, 292, false}},
    {GGML_IQ2_XXS, {"iq2_xxs", 256, 66, false}}, {GGML_IQ2_XS, {"iq2_xs", 256, 74, false}},
    {GGML_IQ3_XXS, {"iq3_xxs", 256, 98, false}}, {GGML_IQ1_S, {"iq1_s", 256, 50, false}},
    {GGML_IQ4_NL, {"iq4_nl", 32, 18, false}},  {GGML_IQ3_S, {"iq3_s", 256, 110, false}},
    {GGML_IQ2_S, {"iq2_s", 256, 82, false}},   {GGML_IQ4_XS, {"iq4_xs", 256, 136, false}},
    {GGML_I8, {"i8", 1, 1, false}},            {GGML_I16, {"i16", 1, 2, false}},
    {GGML_I32, {"i32", 1, 4, false}},          {GGML_I64, {"i64", 1, 8, false}},
    {GGML_F64, {"f64", 1, 8, false}},          {GGML_IQ1_M, {"iq1_m", 256, 56, false}},
    {GGML_BF16, {"bf16", 1, 2, true}},         {GGML_TQ1_0, {"tq1_0", 256, 54, false}},
    {GGML_TQ2_0, {"tq2_0", 256, 66, false}},   {GGML_MXFP4, {"mxfp4", 32, 17, false}},
};
}  // namespace

const GgmlTypeTraits& ggml_type_traits(uint32_t type) {
  for (const Entry& e : kTable)
    if (e.id == type) return e.t;
  return kUnknown;
}

size_t ggml_row_size(uint32_t type, int64_t n) {
  const GgmlTypeTraits& t = ggml_type_traits(type);
  if (t.block_size == 0 || n < 0 || n % t.block_size != 0) return 0;
  return static_cast<size_t>(n / t.block_size) * t.type_size;
}

}  // namespace ts

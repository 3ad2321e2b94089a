// Token sampler, one per sequence. Same chain as llama.cpp's common sampler:
//   penalties -> top-k -> top-p -> min-p -> temperature -> draw
// temperature 0 (or top-k 1) = argmax of the penalised logits.
//
// - Penalties (llama.cpp's formula) look at the last `penalty_last_n` tokens of
//   the history (0 = off, -1 = the whole history buffer): a token present c
//   times gets  logit = logit > 0 ? logit / rep : logit * rep ;
//   logit -= c * frequency + presence.
// - top-k keeps the k highest (0 = off); top-p the smallest set whose
//   probability (renormalised over what top-k kept) reaches p (1 = off);
//   min-p the tokens with p >= min_p * p_max (0 = off). Ties are ordered by
//   lower token id first, so the kept set is always well defined.
// - Reported logprob: log-softmax over the whole vocabulary of the penalised
//   logits (before temperature and truncation), for the chosen token and for
//   the n_top highest alternatives (sorted, highest first, ties by lower id).
// - Draw: one 53-bit uniform u from xoshiro256** (seeded with splitmix64(seed))
//   per non-greedy token; the token is the first candidate, in the candidate
//   order, whose cumulative weight exceeds u * total. Greedy steps draw
//   nothing. Same seed + params + logits sequence -> same tokens, for a given
//   build and CPU path (the SIMD exp is not bit-identical to the scalar one).
//
// Allocation: the constructor sizes everything; reset/sample/accept allocate
// nothing. The vocabulary-sized scratch (~20 bytes per vocabulary entry) can be
// shared by the samplers of one session, which sample one at a time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/kernels.h"
#include "sampling/sampler_math.h"

namespace ts {

struct SamplerParams {
  float temperature = 0.8f, top_p = 1, min_p = 0, repetition_penalty = 1, presence_penalty = 0,
        frequency_penalty = 0;
  int top_k = 0, penalty_last_n = 64, n_top = 0;
  uint32_t seed = 0;
};

// Pointers refer to the sampler's own buffers: valid until its next sample().
struct SampleResult {
  int32_t token;
  float logprob;
  int n_top;
  const int32_t* top_ids;
  const float* top_logprobs;
};

// Candidate token during truncation.
struct SamplerCandidate {
  float logit;
  int32_t id;
};

// An array left uninitialised (every use writes before it reads): its pages
// become resident only when a sampling step that needs them writes them. Greedy
// sampling touches none, so a session does not hold 28 bytes × vocabulary of
// zeros it never reads (0.9 MB per engine worker for a 32k vocabulary, 4 MB for
// 150k), as zero-filled std::vectors did.
template <typename T>
class ScratchArray {
 public:
  ScratchArray() = default;
  explicit ScratchArray(size_t n) : data_(new T[n]), size_(n) {}
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_.get(); }
  T* end() { return data_.get() + size_; }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<T[]> data_;
  size_t size_ = 0;
};

// Vocabulary-sized working memory. Not thread-safe: samplers sharing one must
// not sample concurrently.
struct SamplerScratch {
  explicit SamplerScratch(int vocab_size);
  int vocab_size;
  ScratchArray<float> penalised;        // logits after penalties
  ScratchArray<float> exp_full;         // exp(l - max) over the vocabulary
  ScratchArray<float> weights;          // draw weights / gathered logits
  ScratchArray<double> block_sums;      // per kSamplerExpBlock partial sums
  ScratchArray<SamplerCandidate> cand;  // the kept set when explicit
  ScratchArray<SamplerCandidate> aux;   // selection and boundary scratch
  ScratchArray<double> bins;            // top-p mass histogram
};

class Sampler {
 public:
  // Allocates all buffers. max_history: tokens of history kept for penalties;
  // max_top: most alternatives sample() may report. `scratch` may be shared
  // (same vocab_size); null = own. `path` picks the SIMD variant (clamped to
  // what the CPU has); default: the best available.
  Sampler(int vocab_size, int max_history, int max_top,
          std::shared_ptr<SamplerScratch> scratch = nullptr, int path = -1);

  // Validates and installs params, seeds the rng, loads the penalty history
  // (its last max_history tokens). Throws EngineError(INVALID_ARGUMENT).
  void reset(const SamplerParams& p, const int32_t* history, int n_history);
  // logits: vocab_size floats. No heap allocation.
  SampleResult sample(const float* logits);
  // Appends a token to the penalty history (throws if out of range).
  void accept(int32_t token);

  int vocab_size() const { return vocab_; }
  int max_top() const { return max_top_; }
  const SamplerParams& params() const { return params_; }
  CpuPath path() const { return path_; }

 private:
  const float* apply_penalties(const float* logits);
  void select_top(const float* logits, int k, SamplerCandidate* out);
  int top_p_sorted(int n, double target);
  int top_p_histogram(const float* logits, bool implicit, int n, double target);
  int draw(const float* logits, bool implicit, int n);
  uint64_t next_u64();

  int vocab_, max_history_, max_top_;
  CpuPath path_;
  SamplerMath math_;
  std::shared_ptr<SamplerScratch> scratch_;
  SamplerParams params_;
  uint64_t rng_[4] = {0, 0, 0, 0};
  float max_logit_ = 0;  // of the penalised logits, for the current sample()
  int argmax_ = 0;
  std::vector<int32_t> history_;   // ring buffer
  int hist_head_ = 0, hist_count_ = 0;
  std::vector<int32_t> window_;    // sorted copy of the penalty window
  std::vector<SamplerCandidate> top_;
  std::vector<int32_t> top_ids_;
  std::vector<float> top_logprobs_;
};

}  // namespace ts

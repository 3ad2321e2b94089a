// A session: KV cache slots, scratch buffers, a thread pool and per-slot
// samplers over a shared Model. Everything a decode step touches is allocated
// at creation; Decode() performs no heap allocation. Not thread-safe: one
// session belongs to one worker thread.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/aligned_buffer.h"
#include "model/attention_kernels.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/thread_pool.h"
#include "sampling/sampler.h"

namespace ts {

struct SessionOptions {
  int max_sequences = 1;
  int context_length = 0;  // per sequence; 0 = the model's trained context
  int max_batch = 512;     // entries per Decode
  int max_outputs = 0;     // logits rows per Decode; 0 = min(max_batch, max_sequences)
  int threads = 0;         // 0 = physical cores
  KvType kv_type = KvType::F16;
  // false (ablation/debug only): the step's activation and scratch buffers are
  // allocated anew for every Decode instead of once at creation.
  bool reuse_buffers = true;
};

// One Decode batch: parallel arrays of n entries.
struct BatchView {
  const int32_t* seq = nullptr;
  const int32_t* token = nullptr;
  const int32_t* pos = nullptr;
  const uint8_t* want_logits = nullptr;
  int n = 0;
};

class Session {
 public:
  // Throws EngineError("INVALID_ARGUMENT") for bad options.
  Session(std::shared_ptr<const Model> model, const SessionOptions& opts);
  ~Session();

  const Model& model() const { return *model_; }
  int max_sequences() const { return max_sequences_; }
  int context_length() const { return n_ctx_; }
  int max_batch() const { return max_batch_; }
  int max_outputs() const { return max_outputs_; }
  int threads() const { return pool_->size(); }
  int64_t vocab_size() const { return model_->config().n_vocab; }
  size_t kv_cache_bytes() const { return kv_.bytes(); }
  // The part of the KV cache in memory now: the pages positions were written to.
  size_t kv_resident_bytes() const { return kv_.resident_bytes(); }

  // Validates the batch (nothing changes if it is bad: EngineError
  // INVALID_ARGUMENT / OUT_OF_RANGE), then runs one forward pass over it.
  // Returns the number of logits rows written to logits(), in batch order.
  int Decode(const BatchView& batch);

  // Logits memory: max_outputs() rows of vocab_size() floats. Shared so that a
  // JS view of it stays valid after the session is closed.
  const std::shared_ptr<AlignedBuffer>& logits_buffer() const { return logits_; }
  const float* logits_row(int row) const { return logits_->as<float>() + static_cast<size_t>(row) * vocab_size(); }
  int last_output_count() const { return n_out_; }

  // Most alternatives Sample() reports (SamplerParams::n_top).
  static constexpr int kMaxTopLogprobs = 20;
  void SetSampler(int seq, const SamplerParams& params, const int32_t* history, int n_history);
  // Samples from row `row` of the last Decode, which must belong to `seq`; the
  // token joins the sequence's penalty history. The result's arrays are valid
  // until the next Sample() for the same sequence.
  SampleResult Sample(int seq, int row);

  void ClearSequence(int seq);
  int SequenceLength(int seq) const;

 private:
  void Validate(const BatchView& b);
  // Allocates every activation/scratch buffer anew at its size (reuse_buffers = false).
  void ReallocateScratch();
  void Forward(const BatchView& b);
  void ComputeRope(const BatchView& b);
  void Attention(int layer, const BatchView& b);
  void CheckSeq(int seq) const;
  // fn(row) for rows [0, n), spread over the pool when there is enough work
  // (cost = floats touched per row); in order on this thread otherwise.
  template <typename Fn>
  void ForRows(int n, int64_t cost, Fn&& fn) {
    if (n <= 1 || pool_->size() == 1 || n * cost < (1 << 15)) {
      for (int i = 0; i < n; ++i) fn(i);
      return;
    }
    const int chunks = std::min(n, pool_->size() * 4);
    auto task = [&](int t, int) {
      for (int i = n * t / chunks; i < n * (t + 1) / chunks; ++i) fn(i);
    };
    pool_->parallel_for(chunks, task);
  }

  std::shared_ptr<const Model> model_;
  const Kernels& kernels_;
  const AttentionKernels& attn_kernels_;
  int max_sequences_, n_ctx_, max_batch_, max_outputs_;
  bool reuse_buffers_;
  std::unique_ptr<ThreadPool> pool_;
  KvCache kv_;
  std::vector<int32_t> seq_len_;     // tokens cached per slot
  std::vector<int32_t> next_pos_;    // validation scratch: expected next position per slot
  std::vector<int32_t> out_seq_;     // seq of each logits row of the last Decode
  int n_out_ = 0;
  std::vector<std::unique_ptr<Sampler>> samplers_;  // one per slot, sharing one scratch

  // Scratch (64-byte aligned, sized for max_batch entries).
  AlignedBuffer x_;          // residual stream [batch][n_embd]
  AlignedBuffer xb_;         // normed input / matmul output [batch][n_embd]
  AlignedBuffer q_, k_, v_;  // [batch][q_dim], [batch][kv_dim] x2
  AlignedBuffer attn_;       // attention output [batch][q_dim]
  AlignedBuffer proj_;       // attention / FFN output projections [batch][n_embd]
  AlignedBuffer gate_, up_;  // [batch][n_ff]
  AlignedBuffer rope_;       // cos/sin per entry [batch][rope_dim]
  AlignedBuffer attn_scratch_;  // per thread: attention state of up to one KV group of heads
  size_t attn_scratch_stride_ = 0;  // floats per thread, a multiple of 16 (64 bytes)
  AlignedBuffer hidden_out_; // final-normed rows wanting logits [max_outputs][n_embd]
  AlignedBuffer matmul_scratch_;
  std::vector<int32_t> out_index_;  // batch index of each logits row
  std::shared_ptr<AlignedBuffer> logits_;
};

}  // namespace ts

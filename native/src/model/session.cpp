#include "model/session.h"

#include <algorithm>
#include <string>

#include "bindings/errors.h"

namespace ts {

namespace {

void RequireRange(const char* what, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    throw EngineError("INVALID_ARGUMENT", std::string(what) + " = " + std::to_string(v) + " is out of range [" +
                                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

int ResolveThreads(int threads) {
  if (threads == 0) return std::max(1, physical_core_count());
  RequireRange("threads", threads, 1, 1024);
  return threads;
}

}  // namespace

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& o)
    : model_(std::move(model)),
      kernels_(model_->kernels()),
      attn_kernels_(attention_kernels(model_->kernels().path)),
      max_sequences_((RequireRange("maxSequences", o.max_sequences, 1, 65536), o.max_sequences)),
      n_ctx_(o.context_length == 0 ? static_cast<int>(std::min<int64_t>(model_->config().n_ctx_train, 1 << 30))
                                   : o.context_length),
      max_batch_((RequireRange("maxBatch", o.max_batch, 1, 1 << 20), o.max_batch)),
      max_outputs_(o.max_outputs == 0 ? std::min(o.max_batch, o.max_sequences) : o.max_outputs),
      reuse_buffers_(o.reuse_buffers),
      pool_(new ThreadPool(ResolveThreads(o.threads))),
      kv_((RequireRange("contextLength", n_ctx_, 1, model_->config().n_ctx_train), model_->config().n_layer),
          max_sequences_, n_ctx_, model_->config().kv_dim(), o.kv_type) {
  RequireRange("maxOutputs", max_outputs_, 1, max_batch_);
  const ModelConfig& c = model_->config();
  const size_t B = static_cast<size_t>(max_batch_);
  const size_t F = sizeof(float);
  seq_len_.assign(static_cast<size_t>(max_sequences_), 0);
  next_pos_.assign(static_cast<size_t>(max_sequences_), 0);
  out_seq_.assign(static_cast<size_t>(max_outputs_), -1);
  out_index_.assign(static_cast<size_t>(max_outputs_), 0);
  auto sampler_scratch = std::make_shared<SamplerScratch>(static_cast<int>(c.n_vocab));
  SamplerParams greedy;
  greedy.temperature = 0.0f;
  samplers_.reserve(static_cast<size_t>(max_sequences_));
  for (int i = 0; i < max_sequences_; ++i) {
    samplers_.push_back(std::make_unique<Sampler>(static_cast<int>(c.n_vocab), n_ctx_, kMaxTopLogprobs,
                                                  sampler_scratch, static_cast<int>(kernels_.path)));
    samplers_.back()->reset(greedy, nullptr, 0);
  }

  x_.Reset(B * c.n_embd * F);
  xb_.Reset(B * c.n_embd * F);
  proj_.Reset(B * c.n_embd * F);
  q_.Reset(B * c.q_dim() * F);
  k_.Reset(B * c.kv_dim() * F);
  v_.Reset(B * c.kv_dim() * F);
  attn_.Reset(B * c.q_dim() * F);
  gate_.Reset(B * c.n_ff * F);
  up_.Reset(B * c.n_ff * F);
  rope_.Reset(B * c.rope_dim * F);
  // Per thread, for a task of up to `group` heads: queries / f32 sums, f16
  // sums (+1 float of padding), running max and sum per head.
  const int64_t group = c.n_head / c.n_head_kv;
  attn_scratch_stride_ = static_cast<size_t>((group * c.head_dim * 3 / 2 + 1 + 2 * group + 15) / 16 * 16);
  attn_scratch_.Reset(static_cast<size_t>(pool_->size()) * attn_scratch_stride_ * F);
  hidden_out_.Reset(static_cast<size_t>(max_outputs_) * c.n_embd * F);
  size_t scratch = 0;
  for (int64_t cols : {c.n_embd, c.q_dim(), c.n_ff}) scratch = std::max(scratch, matmul_scratch_bytes(cols, max_batch_, pool_->size()));
  matmul_scratch_.Reset(std::max<size_t>(scratch, 64));
  logits_ = std::make_shared<AlignedBuffer>(static_cast<size_t>(max_outputs_) * c.n_vocab * F);
}

Session::~Session() = default;

void Session::CheckSeq(int seq) const {
  if (seq < 0 || seq >= max_sequences_)
    throw EngineError("INVALID_ARGUMENT", "sequence id " + std::to_string(seq) + " is out of range [0, " +
                                              std::to_string(max_sequences_ - 1) + "]");
}

void Session::Validate(const BatchView& b) {
  if (b.n < 1 || b.n > max_batch_)
    throw EngineError("INVALID_ARGUMENT", "batch of " + std::to_string(b.n) + " entries; this session takes 1 to " +
                                              std::to_string(max_batch_) + " (maxBatch)");
  std::copy(seq_len_.begin(), seq_len_.end(), next_pos_.begin());
  const int64_t vocab = model_->config().n_vocab;
  int n_out = 0;
  for (int i = 0; i < b.n; ++i) {
    const int32_t s = b.seq[i], t = b.token[i], p = b.pos[i];
    // The message is built only when throwing: a valid batch allocates nothing.
    auto at = [i] { return "batch entry " + std::to_string(i) + ": "; };
    if (s < 0 || s >= max_sequences_)
      throw EngineError("INVALID_ARGUMENT", at() + "sequence id " + std::to_string(s) + " is out of range [0, " +
                                                std::to_string(max_sequences_ - 1) + "]");
    if (t < 0 || t >= vocab)
      throw EngineError("INVALID_ARGUMENT", at() + "token " + std::to_string(t) + " is out of range [0, " +
                                                std::to_string(vocab - 1) + "]");
    if (p != next_pos_[s])
      throw EngineError("INVALID_ARGUMENT", at() + "sequence " + std::to_string(s) + " expects position " +
                                                std::to_string(next_pos_[s]) + ", got " + std::to_string(p));
    if (p >= n_ctx_)
      throw EngineError("OUT_OF_RANGE", at() + "position " + std::to_string(p) + " of sequence " + std::to_string(s) +
                                            " is past the context length " + std::to_string(n_ctx_));
    ++next_pos_[s];
    if (b.want_logits[i]) ++n_out;
  }
  if (n_out > max_outputs_)
    throw EngineError("INVALID_ARGUMENT", "batch asks for " + std::to_string(n_out) +
                                              " logits rows; this session returns at most " +
                                              std::to_string(max_outputs_) + " (maxOutputs)");
}

void Session::ReallocateScratch() {
  // Not logits_: JS holds a view of it.
  for (AlignedBuffer* buf : {&x_, &xb_, &q_, &k_, &v_, &attn_, &proj_, &gate_, &up_, &rope_, &attn_scratch_, &hidden_out_, &matmul_scratch_})
    buf->Reset(buf->bytes());
}

int Session::Decode(const BatchView& b) {
  Validate(b);
  if (!reuse_buffers_) ReallocateScratch();
  Forward(b);
  for (int i = 0; i < b.n; ++i) seq_len_[b.seq[i]] = b.pos[i] + 1;
  return n_out_;
}

void Session::SetSampler(int seq, const SamplerParams& params, const int32_t* history, int n_history) {
  CheckSeq(seq);
  samplers_[seq]->reset(params, history, n_history);
}

SampleResult Session::Sample(int seq, int row) {
  CheckSeq(seq);
  if (row < 0 || row >= n_out_)
    throw EngineError("INVALID_ARGUMENT", "logits row " + std::to_string(row) + " is out of range: the last decode "
                                              "returned " + std::to_string(n_out_) + " rows");
  if (out_seq_[row] != seq)
    throw EngineError("INVALID_ARGUMENT", "logits row " + std::to_string(row) + " belongs to sequence " +
                                              std::to_string(out_seq_[row]) + ", not " + std::to_string(seq));
  Sampler& s = *samplers_[seq];
  const SampleResult r = s.sample(logits_row(row));
  s.accept(r.token);
  return r;
}

void Session::ClearSequence(int seq) {
  CheckSeq(seq);
  seq_len_[seq] = 0;
  for (int r = 0; r < n_out_; ++r)  // its logits rows no longer describe a live sequence
    if (out_seq_[r] == seq) out_seq_[r] = -1;
}

int Session::SequenceLength(int seq) const {
  CheckSeq(seq);
  return seq_len_[seq];
}

}  // namespace ts

// Sampler implementation. See sampler.h for the semantics; this file is about
// doing it without sorting the vocabulary:
// - max, log-sum-exp and the draw are vectorised passes (sampler_math);
// - top-k and top-N use a bounded heap fed by a vectorised "next element above
//   the heap's worst" scan, so a 150k vocabulary costs one streaming pass;
// - top-p on a large unsorted set bins the candidates by distance from the max
//   logit (1/16 nat bins), finds the bin where the cumulative mass crosses p,
//   and sorts only that bin;
// - min-p is a logit threshold (l >= max + log(min_p)), applied as a gather.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "bindings/errors.h"

namespace ts {
namespace {

constexpr int kHistBins = 512;       // top-p histogram: bins of 1/16 nat over 32 nats
constexpr float kHistPerNat = 16.0f;
constexpr int kHeapSelectMax = 1024;  // above this k, select with nth_element instead
constexpr int kSortTopPMax = 2048;    // unsorted sets up to this size are just sorted for top-p

// NaN logits rank as -inf so that comparisons stay a strict weak order.
inline float rank_key(float l) { return l == l ? l : -std::numeric_limits<float>::infinity(); }

// Total order: higher logit first, ties by lower token id.
inline bool better(const SamplerCandidate& a, const SamplerCandidate& b) {
  float ka = rank_key(a.logit), kb = rank_key(b.logit);
  return ka > kb || (ka == kb && a.id < b.id);
}

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

[[noreturn]] void invalid(const std::string& msg) { throw EngineError("INVALID_ARGUMENT", msg); }

}  // namespace

SamplerScratch::SamplerScratch(int n)
    : vocab_size(n),
      penalised(static_cast<size_t>(n)),
      exp_full(static_cast<size_t>(n)),
      weights(static_cast<size_t>(n)),
      block_sums(static_cast<size_t>(n / kSamplerExpBlock + 1)),
      cand(static_cast<size_t>(n)),
      aux(static_cast<size_t>(n)),
      bins(kHistBins) {}

Sampler::Sampler(int vocab_size, int max_history, int max_top,
                 std::shared_ptr<SamplerScratch> scratch, int path)
    : vocab_(vocab_size), max_history_(max_history), max_top_(max_top) {
  if (vocab_size < 1) invalid("sampler: vocabulary size must be >= 1, got " + std::to_string(vocab_size));
  if (max_history < 0) invalid("sampler: max history must be >= 0");
  if (max_top < 0) invalid("sampler: max top must be >= 0");
  max_top_ = std::min(max_top, vocab_size);
  CpuPath best = sampler_best_path();
  path_ = best;
  if (path >= 0) {  // honour a request this CPU can run; otherwise keep the best
    const CpuPath want = static_cast<CpuPath>(path);
    const bool runs = want == CpuPath::Scalar ||
                      (best == CpuPath::Neon ? want == CpuPath::Neon
                                             : want != CpuPath::Neon && path <= static_cast<int>(best));
    if (runs) path_ = want;
  }
  math_ = sampler_math_for(path_);
  if (scratch) {
    if (scratch->vocab_size != vocab_size) invalid("sampler: shared scratch has another vocabulary size");
    scratch_ = std::move(scratch);
  } else {
    scratch_ = std::make_shared<SamplerScratch>(vocab_size);
  }
  history_.resize(static_cast<size_t>(max_history_));
  window_.resize(static_cast<size_t>(max_history_));
  top_.resize(static_cast<size_t>(max_top_));
  top_ids_.resize(static_cast<size_t>(max_top_));
  top_logprobs_.resize(static_cast<size_t>(max_top_));
  reset(SamplerParams{}, nullptr, 0);
}

void Sampler::reset(const SamplerParams& p, const int32_t* history, int n_history) {
  auto finite = [](float v) { return std::isfinite(v); };
  if (!finite(p.temperature) || p.temperature < 0) invalid("sampler: temperature must be a finite number >= 0");
  if (p.top_k < 0) invalid("sampler: top_k must be >= 0");
  if (!(p.top_p >= 0 && p.top_p <= 1)) invalid("sampler: top_p must be in [0, 1]");
  if (!(p.min_p >= 0 && p.min_p <= 1)) invalid("sampler: min_p must be in [0, 1]");
  if (!finite(p.repetition_penalty) || p.repetition_penalty <= 0)
    invalid("sampler: repetition_penalty must be a finite number > 0");
  if (!finite(p.presence_penalty)) invalid("sampler: presence_penalty must be finite");
  if (!finite(p.frequency_penalty)) invalid("sampler: frequency_penalty must be finite");
  if (p.penalty_last_n < -1) invalid("sampler: penalty_last_n must be >= -1");
  if (p.n_top < 0 || p.n_top > max_top_)
    invalid("sampler: n_top must be in [0, " + std::to_string(max_top_) + "], got " + std::to_string(p.n_top));
  if (n_history < 0 || (n_history > 0 && history == nullptr)) invalid("sampler: bad history");
  for (int i = 0; i < n_history; ++i)
    if (history[i] < 0 || history[i] >= vocab_)
      invalid("sampler: history token " + std::to_string(history[i]) + " at index " + std::to_string(i) +
              " is outside the vocabulary [0, " + std::to_string(vocab_) + ")");
  params_ = p;
  uint64_t x = p.seed;
  for (auto& s : rng_) s = splitmix64(x);
  hist_head_ = 0;
  hist_count_ = 0;
  int first = std::max(0, n_history - max_history_);
  for (int i = first; i < n_history; ++i) accept(history[i]);
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= vocab_)
    invalid("sampler: token " + std::to_string(token) + " is outside the vocabulary");
  if (max_history_ == 0) return;
  history_[static_cast<size_t>(hist_head_)] = token;
  hist_head_ = (hist_head_ + 1) % max_history_;
  if (hist_count_ < max_history_) ++hist_count_;
}

uint64_t Sampler::next_u64() {  // xoshiro256**
  const uint64_t result = rotl(rng_[1] * 5, 7) * 9;
  const uint64_t t = rng_[1] << 17;
  rng_[2] ^= rng_[0];
  rng_[3] ^= rng_[1];
  rng_[1] ^= rng_[2];
  rng_[0] ^= rng_[3];
  rng_[2] ^= t;
  rng_[3] = rotl(rng_[3], 45);
  return result;
}

const float* Sampler::apply_penalties(const float* logits) {
  const SamplerParams& p = params_;
  bool active = p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (!active || p.penalty_last_n == 0 || hist_count_ == 0) return logits;
  int w = p.penalty_last_n < 0 ? hist_count_ : std::min(p.penalty_last_n, hist_count_);
  for (int i = 0; i < w; ++i) {  // the w most recent tokens
    int slot = (hist_head_ - 1 - i + 2 * max_history_) % max_history_;
    window_[static_cast<size_t>(i)] = history_[static_cast<size_t>(slot)];
  }
  std::sort(window_.begin(), window_.begin() + w);
  float* pen = scratch_->penalised.data();
  std::memcpy(pen, logits, sizeof(float) * static_cast<size_t>(vocab_));
  for (int i = 0; i < w;) {
    int32_t t = window_[static_cast<size_t>(i)];
    int c = 0;
    while (i < w && window_[static_cast<size_t>(i)] == t) ++c, ++i;
    float l = pen[t];
    l = l <= 0 ? l * p.repetition_penalty : l / p.repetition_penalty;
    l -= static_cast<float>(c) * p.frequency_penalty + p.presence_penalty;
    pen[t] = l;
  }
  return pen;
}

// out[0..k) = the k best of logits[0..vocab), best first.
void Sampler::select_top(const float* logits, int k, SamplerCandidate* out) {
  if (k > kHeapSelectMax) {
    SamplerCandidate* all = scratch_->aux.data();
    for (int i = 0; i < vocab_; ++i) all[i] = {logits[i], i};
    std::nth_element(all, all + (k - 1), all + vocab_, better);
    std::sort(all, all + k, better);
    std::copy(all, all + k, out);
    return;
  }
  for (int i = 0; i < k; ++i) {
    out[i] = {logits[i], i};
    std::push_heap(out, out + i + 1, better);  // worst of the kept at out[0]
  }
  int i = k;
  while (i < vocab_) {
    // Later ids only win with a strictly higher logit than the current worst.
    float thr = std::nextafter(rank_key(out[0].logit), std::numeric_limits<float>::infinity());
    int j = math_.find_ge(logits + i, vocab_ - i, thr);
    if (j == vocab_ - i) break;
    int idx = i + j;
    SamplerCandidate c{logits[idx], idx};
    if (better(c, out[0])) {
      std::pop_heap(out, out + k, better);
      out[k - 1] = c;
      std::push_heap(out, out + k, better);
    }
    i = idx + 1;
  }
  std::sort_heap(out, out + k, better);
}

// Explicit candidates sorted best first: keep the shortest prefix whose mass
// reaches `target` (mass relative to exp(-max)). Returns the kept count.
int Sampler::top_p_sorted(int n, double target) {
  const SamplerCandidate* cand = scratch_->cand.data();
  double cum = 0;
  for (int j = 0; j < n; ++j) {
    cum += sampler_exp_scalar(cand[j].logit - max_logit_);
    if (cum >= target) return j + 1;
  }
  return n;
}

// Top-p on an unsorted set (the whole vocabulary if `implicit`, else the
// explicit candidates). Leaves the result as explicit candidates; returns
// their count.
int Sampler::top_p_histogram(const float* logits, bool implicit, int n, double target) {
  SamplerScratch& s = *scratch_;
  const float m = max_logit_;
  auto logit_at = [&](int j) { return implicit ? logits[j] : s.cand[static_cast<size_t>(j)].logit; };
  auto id_at = [&](int j) { return implicit ? j : s.cand[static_cast<size_t>(j)].id; };
  auto bin_of = [&](float l) {
    float d = (m - l) * kHistPerNat;
    return d < static_cast<float>(kHistBins - 1) ? static_cast<int>(d) : kHistBins - 1;  // NaN -> last
  };
  // Mass per candidate: exp_full holds exp(l - m) for the vocabulary already.
  float* e = s.weights.data();
  if (implicit) {
    e = s.exp_full.data();
  } else {
    for (int j = 0; j < n; ++j) e[j] = s.cand[static_cast<size_t>(j)].logit;
    for (int j = 0; j < n; j += kSamplerExpBlock)
      math_.exp_block(e + j, std::min(kSamplerExpBlock, n - j), m, 1.0f, e + j);
  }
  std::fill(s.bins.begin(), s.bins.end(), 0.0);
  for (int j = 0; j < n; ++j) s.bins[static_cast<size_t>(bin_of(logit_at(j)))] += e[j];
  int cut = kHistBins - 1;
  double cum = 0;
  for (int b = 0; b < kHistBins; ++b) {
    cum += s.bins[static_cast<size_t>(b)];
    if (cum >= target) {
      cut = b;
      break;
    }
  }
  // Bins before `cut` are kept whole; bin `cut` is the boundary. Full part
  // goes to the front of aux, the boundary to its back.
  SamplerCandidate* out = s.aux.data();
  int n_full = 0, n_edge = 0;
  double full_mass = 0;
  for (int j = 0; j < n; ++j) {
    float l = logit_at(j);
    int b = bin_of(l);
    if (b < cut) {
      out[n_full++] = {l, id_at(j)};
      full_mass += e[j];
    } else if (b == cut) {
      out[vocab_ - 1 - n_edge++] = {l, id_at(j)};
    }
  }
  int kept;
  if (full_mass >= target) {
    // Summation order disagreed with the histogram: the cut is inside the full part.
    std::sort(out, out + n_full, better);
    std::swap(s.cand, s.aux);
    return top_p_sorted(n_full, target);
  }
  SamplerCandidate* edge = out + (vocab_ - n_edge);
  std::sort(edge, edge + n_edge, better);
  kept = n_full;
  double c = full_mass;
  for (int j = 0; j < n_edge; ++j) {
    out[kept++] = edge[j];
    c += sampler_exp_scalar(edge[j].logit - m);
    if (c >= target) break;
  }
  std::swap(s.cand, s.aux);
  return kept;
}

// Draws one candidate with weight exp((l - max) / T). Returns the token id.
int Sampler::draw(const float* logits, bool implicit, int n) {
  SamplerScratch& s = *scratch_;
  const float scale = 1.0f / params_.temperature;
  float* w;
  if (implicit && scale == 1.0f) {
    w = s.exp_full.data();  // block_sums still hold the log-sum-exp pass
  } else {
    w = s.weights.data();
    const float* src = logits;
    if (!implicit) {
      for (int j = 0; j < n; ++j) w[j] = s.cand[static_cast<size_t>(j)].logit;
      src = w;
    }
    for (int j = 0, b = 0; j < n; j += kSamplerExpBlock, ++b)
      s.block_sums[static_cast<size_t>(b)] =
          math_.exp_block(src + j, std::min(kSamplerExpBlock, n - j), max_logit_, scale, w + j);
  }
  const int n_blocks = (n + kSamplerExpBlock - 1) / kSamplerExpBlock;
  double total = 0;
  for (int b = 0; b < n_blocks; ++b) total += s.block_sums[static_cast<size_t>(b)];
  auto id_of = [&](int j) { return implicit ? j : s.cand[static_cast<size_t>(j)].id; };
  if (!(total > 0) || !std::isfinite(total)) return argmax_;
  const double u = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  const double target = u * total;
  double cum = 0;
  int last_positive = -1;
  for (int b = 0; b < n_blocks; ++b) {
    double bs = s.block_sums[static_cast<size_t>(b)];
    if (cum + bs <= target && b + 1 < n_blocks) {
      cum += bs;
      continue;
    }
    int lo = b * kSamplerExpBlock, hi = std::min(n, lo + kSamplerExpBlock);
    for (int j = lo; j < hi; ++j) {
      if (w[j] > 0) last_positive = j;
      cum += w[j];
      if (cum > target && w[j] > 0) return id_of(j);
    }
    if (last_positive >= 0) return id_of(last_positive);  // rounding left the target past the block
  }
  return last_positive >= 0 ? id_of(last_positive) : argmax_;
}

SampleResult Sampler::sample(const float* logits) {
  SamplerScratch& s = *scratch_;
  const SamplerParams& p = params_;
  const float* L = apply_penalties(logits);

  math_.max_argmax(L, vocab_, &max_logit_, &argmax_);
  const float m = max_logit_;
  double mass = 0;  // sum of exp(l - m) over the vocabulary
  for (int j = 0, b = 0; j < vocab_; j += kSamplerExpBlock, ++b) {
    float bs = math_.exp_block(L + j, std::min(kSamplerExpBlock, vocab_ - j), m, 1.0f, s.exp_full.data() + j);
    s.block_sums[static_cast<size_t>(b)] = bs;
    mass += bs;
  }
  const bool degenerate = !(mass > 0) || !std::isfinite(m) || !std::isfinite(mass);
  const double log_z = degenerate ? static_cast<double>(m) : static_cast<double>(m) + std::log(mass);
  auto logprob = [&](int32_t t) { return static_cast<float>(static_cast<double>(L[t]) - log_z); };

  SampleResult r{};
  r.n_top = std::min(p.n_top, max_top_);
  if (r.n_top > 0) {
    select_top(L, r.n_top, top_.data());
    for (int i = 0; i < r.n_top; ++i) {
      top_ids_[static_cast<size_t>(i)] = top_[static_cast<size_t>(i)].id;
      top_logprobs_[static_cast<size_t>(i)] = logprob(top_[static_cast<size_t>(i)].id);
    }
  }
  r.top_ids = top_ids_.data();
  r.top_logprobs = top_logprobs_.data();

  int32_t token;
  if (p.temperature <= 0 || p.top_k == 1 || degenerate) {
    token = argmax_;
  } else {
    bool implicit = true;  // candidates = the whole vocabulary, in id order
    bool sorted = false;
    int n = vocab_;
    if (p.top_k > 0 && p.top_k < vocab_) {
      select_top(L, p.top_k, s.cand.data());
      n = p.top_k;
      implicit = false;
      sorted = true;
    }
    const bool use_top_p = p.top_p < 1.0f, use_min_p = p.min_p > 0.0f;
    const float min_p_thr = m + std::log(p.min_p);
    auto apply_top_p = [&](double set_mass) {
      double target = static_cast<double>(p.top_p) * set_mass;
      if (!implicit && !sorted && n <= kSortTopPMax) {
        std::sort(s.cand.begin(), s.cand.begin() + n, better);
        sorted = true;
      }
      if (sorted) {
        n = top_p_sorted(n, target);
      } else {
        n = top_p_histogram(L, implicit, n, target);
        implicit = false;
      }
    };
    if (implicit && use_min_p) {
      // min-p keeps a prefix of the ranking, so it commutes with top-p as long
      // as top-p's mass is that of the set before min-p (here: the vocabulary).
      int kept = 0;
      for (int i = 0; i < vocab_;) {
        int j = math_.find_ge(L + i, vocab_ - i, min_p_thr);
        if (j == vocab_ - i) break;
        s.cand[static_cast<size_t>(kept++)] = {L[i + j], i + j};
        i += j + 1;
      }
      n = kept;
      implicit = false;
      if (use_top_p) apply_top_p(mass);
    } else {
      if (use_top_p) {
        double set_mass = mass;
        if (!implicit) {
          set_mass = 0;
          for (int j = 0; j < n; ++j) set_mass += sampler_exp_scalar(s.cand[static_cast<size_t>(j)].logit - m);
        }
        apply_top_p(set_mass);
      }
      if (use_min_p) {
        int kept = 0;
        for (int j = 0; j < n; ++j)
          if (s.cand[static_cast<size_t>(j)].logit >= min_p_thr) s.cand[static_cast<size_t>(kept++)] = s.cand[static_cast<size_t>(j)];
        n = kept;
      }
    }
    token = n > 0 ? draw(L, implicit, n) : argmax_;
  }
  r.token = token;
  r.logprob = logprob(token);
  return r;
}

}  // namespace ts

#include "stream_state.h"

#include <algorithm>

namespace speech {

StreamState::StreamState(const PcmFormat& format)
    : format_(format), decoded_(static_cast<std::size_t>(format.channels)) {
  resamplers_.reserve(decoded_.size());
  for (int c = 0; c < format.channels; ++c) resamplers_.emplace_back(format.sample_rate);
}

bool StreamState::prepared() const {
  return std::all_of(resamplers_.begin(), resamplers_.end(), [](const Resampler& r) { return r.prepared(); });
}

void StreamState::Prepare() {
  for (Resampler& r : resamplers_) r.Prepare();  // the first designs; the others find it cached
}

void StreamState::Push(const std::uint8_t* data, std::size_t size, std::vector<std::vector<float>>& out) {
  const std::size_t frame = static_cast<std::size_t>(format_.FrameBytes());
  out.resize(decoded_.size());  // one (maybe empty) output per channel, even for a partial frame
  for (auto& d : decoded_) d.clear();
  if (!carry_.empty()) {  // complete the frame split across the previous push
    const std::size_t take = std::min(frame - carry_.size(), size);
    carry_.insert(carry_.end(), data, data + take);
    data += take;
    size -= take;
    if (carry_.size() < frame) return;
    DecodeFrames(format_, carry_.data(), 1, decoded_);
    carry_.clear();
  }
  const std::size_t frames = size / frame;
  DecodeFrames(format_, data, frames, decoded_);
  carry_.assign(data + frames * frame, data + size);
  Resample(out);
}

void StreamState::Resample(std::vector<std::vector<float>>& out) {
  out.resize(decoded_.size());
  for (std::size_t c = 0; c < decoded_.size(); ++c) {
    resamplers_[c].Process(decoded_[c].data(), decoded_[c].size(), out[c]);
  }
}

std::size_t StreamState::Flush(std::vector<std::vector<float>>& out) {
  const std::size_t discarded = carry_.size();
  carry_.clear();
  out.resize(resamplers_.size());
  for (std::size_t c = 0; c < resamplers_.size(); ++c) resamplers_[c].Flush(out[c]);
  return discarded;
}

}  // namespace speech

// Models are loaded once per process: every worker thread's loadModel()/loadVad() for the same
// files gets the same instance. Sharing is safe because a loaded model is only read (ORT sessions
// may Run concurrently; per-stream state lives in the stream's own objects).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace speech {

template <typename T>
class ProcessCache {
 public:
  // The live instance for `key`, or a new one from `load`. The lock is held across the load, so a
  // second thread asking for the same files waits and reuses them instead of loading them again.
  std::shared_ptr<T> GetOrLoad(const std::string& key, const std::function<std::shared_ptr<T>()>& load) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (std::shared_ptr<T> live = entries_[key].lock()) return live;
    std::shared_ptr<T> fresh = load();
    entries_[key] = fresh;
    return fresh;
  }

  // Instances alive now (one per distinct key still referenced).
  std::size_t Live() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::size_t n = 0;
    for (const auto& entry : entries_) n += entry.second.expired() ? 0 : 1;
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::weak_ptr<T>> entries_;  // weak: the last JS handle frees the model
};

}  // namespace speech

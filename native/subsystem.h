// The subsystems every unit of work is labelled with: the `task` label of the task metrics.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace speech {

enum class Subsystem : std::size_t {
  kApiRouting,
  kClient,
  kAudioDecoding,
  kVad,
  kInference,
  kMetrics,
  kCount,
};

inline constexpr std::size_t kSubsystemCount = static_cast<std::size_t>(Subsystem::kCount);

inline constexpr std::array<std::string_view, kSubsystemCount> kSubsystemNames = {
    "api_routing", "client", "audio_decoding", "vad", "inference", "metrics",
};

inline std::optional<Subsystem> ParseSubsystem(std::string_view name) {
  for (std::size_t i = 0; i < kSubsystemCount; ++i) {
    if (kSubsystemNames[i] == name) return static_cast<Subsystem>(i);
  }
  return std::nullopt;
}

inline std::string_view SubsystemName(Subsystem s) { return kSubsystemNames[static_cast<std::size_t>(s)]; }

}  // namespace speech

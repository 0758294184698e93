#include "ort_env.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace speech {
namespace {

// Minimal protobuf writer, enough to spell the probe's ONNX ModelProto without an onnx library.
std::string Varint(std::uint64_t v) {
  std::string out;
  do {
    std::uint8_t byte = v & 0x7F;
    v >>= 7;
    if (v != 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (v != 0);
  return out;
}
std::string IntField(int number, std::uint64_t v) {
  return Varint(static_cast<std::uint64_t>(number) << 3) + Varint(v);
}
std::string BytesField(int number, std::string_view bytes) {
  return Varint((static_cast<std::uint64_t>(number) << 3) | 2) + Varint(bytes.size()) + std::string(bytes);
}

// ValueInfoProto{name, type: TypeProto{tensor_type{elem_type: FLOAT, shape{dim{dim_value: 3}}}}}
std::string FloatVector3(std::string_view name) {
  const std::string shape = BytesField(1, IntField(1, 3));
  const std::string tensor = IntField(1, 1) + BytesField(2, shape);
  return BytesField(1, name) + BytesField(2, BytesField(1, tensor));
}

std::string ProbeModel() {
  // NodeProto{input: x, input: x, output: y, op_type: Add}
  const std::string node = BytesField(1, "x") + BytesField(1, "x") + BytesField(2, "y") + BytesField(4, "Add");
  const std::string graph = BytesField(1, node) + BytesField(2, "probe") + BytesField(11, FloatVector3("x")) +
                            BytesField(12, FloatVector3("y"));
  // ModelProto{ir_version: 8, graph, opset_import{version: 13}}
  return IntField(1, 8) + BytesField(7, graph) + BytesField(8, IntField(2, 13));
}

}  // namespace

Ort::Env& OrtEnv() {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "speech");
  return env;
}

Ort::SessionOptions DefaultSessionOptions() {
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(1);
  options.SetInterOpNumThreads(1);
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  // Denormal floats (near-silent audio, hostile input) take the slow path of every float op; as
  // zeros they change no result the models can tell apart (issue #17).
  options.AddConfigEntry("session.set_denormal_as_zero", "1");
  return options;
}

std::string ProbeOrt() {
  const std::string model = ProbeModel();
  Ort::Session session(OrtEnv(), model.data(), model.size(), DefaultSessionOptions());
  std::array<float, 3> x{1.0f, -2.5f, 4.0f};
  const std::array<std::int64_t, 1> shape{3};
  const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  Ort::Value input = Ort::Value::CreateTensor<float>(memory, x.data(), x.size(), shape.data(), shape.size());
  const char* input_names[] = {"x"};
  const char* output_names[] = {"y"};
  auto outputs = session.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names, 1);
  const float* y = outputs.at(0).GetTensorData<float>();
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(y[i] - 2.0f * x[i]) > 1e-6f) throw std::runtime_error("ONNX Runtime probe computed a wrong sum");
  }
  return Ort::GetVersionString();
}

}  // namespace speech

#include "models/vocabulary.h"

#include <fstream>
#include <iterator>

#include "job.h"

namespace speech {
namespace {

enum Kind : std::uint8_t { kText = 0, kByte = 1, kControl = 2 };

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xNN>" -> NN, or -1.
int BytePiece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  const int hi = HexDigit(piece[3]), lo = HexDigit(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Copies `in` to `out`, replacing each maximal invalid UTF-8 subpart with U+FFFD (the WHATWG
// decoder's rule, which is what TextDecoder and so llama-tokenizer-js apply).
void AppendValidUtf8(const std::string& in, std::string& out) {
  static const char kReplacement[] = "\xEF\xBF\xBD";
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t n = in.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    std::size_t need;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      out += kReplacement;
      ++i;
      continue;
    }
    std::size_t j = i + 1, k = 0;
    for (; k < need && j < n; ++k, ++j) {
      const unsigned char lower = k == 0 ? lo : 0x80, upper = k == 0 ? hi : 0xBF;
      if (s[j] < lower || s[j] > upper) break;
    }
    if (k == need) {
      out.append(in, i, j - i);
    } else {
      out += kReplacement;  // the valid prefix is consumed; the offending byte is reread
    }
    i = j;
  }
}

}  // namespace

Vocabulary::Vocabulary(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw JobError("MODEL_LOAD", "vocabulary not found or unreadable: " + path);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) throw JobError("MODEL_LOAD", "cannot read vocabulary: " + path);

  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    pieces_.emplace_back(text, start, end - start);
    start = end + 1;
  }
  if (pieces_.size() < kMinSize) {
    throw JobError("MODEL_LOAD", "vocabulary " + path + " has " + std::to_string(pieces_.size()) +
                                     " entries, expected at least " + std::to_string(kMinSize));
  }

  kind_.assign(pieces_.size(), kText);
  for (std::size_t id = 0; id < pieces_.size(); ++id) {
    std::string& piece = pieces_[id];
    if (id < 3) {  // <unk>, <s>, </s>
      kind_[id] = kControl;
    } else if (const int byte = BytePiece(piece); byte >= 0) {
      kind_[id] = kByte;
      piece.assign(1, static_cast<char>(byte));
    }
  }
}

std::string Vocabulary::Decode(const std::vector<std::int64_t>& ids) const {
  std::string bytes;
  for (const std::int64_t id : ids) {
    if (id < 0 || static_cast<std::uint64_t>(id) >= pieces_.size()) continue;
    if (kind_[static_cast<std::size_t>(id)] == kControl) continue;
    bytes += pieces_[static_cast<std::size_t>(id)];
  }
  std::string utf8;
  utf8.reserve(bytes.size());
  AppendValidUtf8(bytes, utf8);

  // "▁" -> ' ' after the bytes are joined, as SentencePiece (and llama-tokenizer-js) does.
  static const std::string kSpaceMark = "\xE2\x96\x81";
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size();) {
    if (utf8.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
      out.push_back(' ');
      i += kSpaceMark.size();
    } else {
      out.push_back(utf8[i++]);
    }
  }
  if (!out.empty() && out.front() == ' ') out.erase(0, 1);
  return out;
}

}  // namespace speech

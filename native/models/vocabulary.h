// SentencePiece detokenisation for the Llama vocabulary (as llama-tokenizer-js has it): a text file
// whose line i is the piece of token id i. "▁" (U+2581) marks a space, "<0xNN>" pieces are raw
// bytes reassembled into UTF-8, ids 0/1/2 (<unk>, <s>, </s>) are control tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace speech {

class Vocabulary {
 public:
  // The Llama vocabulary has 32,000 pieces; a shorter file is refused.
  static constexpr std::size_t kMinSize = 32000;

  // Reads the file (lines split on '\n' only: some pieces end in '\r'). Throws
  // JobError("MODEL_LOAD", …) when it is missing, unreadable or has fewer than kMinSize lines.
  explicit Vocabulary(const std::string& path);

  // Ids to text: control tokens (0, 1, 2) and ids outside the vocabulary are skipped, byte
  // pieces are joined into UTF-8 (invalid sequences become U+FFFD, as TextDecoder does), "▁"
  // becomes ' ', and one leading space is removed. Matches llama-tokenizer-js decode(ids, false,
  // true) on ids without specials. Thread-safe (const, no shared mutable state).
  std::string Decode(const std::vector<std::int64_t>& ids) const;

  std::size_t size() const { return pieces_.size(); }

 private:
  std::vector<std::string> pieces_;  // byte pieces are stored as their single raw byte
  std::vector<std::uint8_t> kind_;   // Kind, per id
};

}  // namespace speech

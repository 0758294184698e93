// Word error rate: word-level edit distance over the reference length, after normalising case,
// punctuation and hyphens (the model's "brown-fox" is the reference's "brown fox").

export function words(text: string): string[] {
  return text.toLowerCase().replace(/[-‐–—]/g, ' ').replace(/[^a-z0-9' ]/g, ' ').split(/\s+/).filter(Boolean);
}

export function wordErrors(reference: string, hypothesis: string): number {
  const r = words(reference);
  const h = words(hypothesis);
  let prev = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 1; i <= r.length; i++) {
    const row = [i];
    for (let j = 1; j <= h.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (r[i - 1] === h[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[h.length]!;
}

export const UTTERANCE_A = 'the quick brown fox jumped over the lazy dog';
export const UTTERANCE_B = 'please call stella and ask her to bring these things with her from the store';

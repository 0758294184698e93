// Word error rate for the benchmarks: edit distance over words after the normalisation that
// test/fixtures/real-speech/README.md asks for (both sides: lowercase, punctuation out, number
// words as digits, since prompts.tsv writes "press 1" and the model may say "press one").

const NUMBERS: Record<string, string> = {
  zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
};

/** Lowercase words; hyphens and other punctuation split or vanish ("re-entered" → "re entered", "you're" → "youre"). */
export function normaliseWords(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/'/g, '')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((w) => w !== '')
    .map((w) => NUMBERS[w] ?? w);
}

/** Substitutions + deletions + insertions turning `ref` into `hyp` (Levenshtein over words). */
export function wordEdits(ref: readonly string[], hyp: readonly string[]): number {
  let prev = Array.from({ length: hyp.length + 1 }, (_, j) => j);
  for (let i = 1; i <= ref.length; i++) {
    const row = [i];
    for (let j = 1; j <= hyp.length; j++) {
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (ref[i - 1] === hyp[j - 1] ? 0 : 1)));
    }
    prev = row;
  }
  return prev[hyp.length]!;
}

export interface WerTally {
  errors: number;
  words: number;
}

/** Adds one stream's reference and hypothesis texts (each the whole stream, in order) to `tally`. */
export function addToTally(tally: WerTally, reference: string, hypothesis: string): void {
  const ref = normaliseWords(reference);
  tally.errors += wordEdits(ref, normaliseWords(hypothesis));
  tally.words += ref.length;
}

export const werOf = (t: WerTally): number | null => (t.words > 0 ? Number((t.errors / t.words).toFixed(4)) : null);

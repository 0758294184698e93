// A transcript in each of the OpenAI API's `response_format`s.

export type ResponseFormat = 'json' | 'text' | 'verbose_json' | 'srt' | 'vtt';
export const RESPONSE_FORMATS: readonly ResponseFormat[] = ['json', 'text', 'verbose_json', 'srt', 'vtt'];

export interface Segment {
  /** Seconds from the start of the file (the VAD's utterance with its padding). */
  start: number;
  end: number;
  text: string;
}

export interface Transcript {
  segments: Segment[];
  /** Seconds of audio in the file. */
  duration: number;
}

interface Rendered {
  contentType: string;
  body: string;
}

export function joinText(segments: readonly Segment[]): string {
  return segments.map((s) => s.text.trim()).filter((t) => t !== '').join(' ');
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;

/** `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT). */
export function timestamp(seconds: number, separator: ',' | '.'): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${separator}${pad(ms % 1000, 3)}`;
}

export function render(transcript: Transcript, format: ResponseFormat): Rendered {
  const segments = transcript.segments.filter((s) => s.text.trim() !== '');
  const text = joinText(segments);
  // Whisper bills by duration; OpenAI's JSON carries it as `usage` of type "duration".
  const usage = { type: 'duration', seconds: Math.ceil(transcript.duration) };
  switch (format) {
    case 'json':
      return { contentType: 'application/json', body: JSON.stringify({ text, usage }) };
    case 'text':
      return { contentType: 'text/plain; charset=utf-8', body: `${text}\n` };
    case 'verbose_json':
      return {
        contentType: 'application/json',
        body: JSON.stringify({
          task: 'transcribe',
          language: 'english',
          duration: round3(transcript.duration),
          text,
          // Whisper's per-segment fields that this model has no figure for are left out,
          // not invented (tokens, avg_logprob, no_speech_prob, ...).
          segments: segments.map((s, id) => ({ id, seek: 0, start: round3(s.start), end: round3(s.end), text: s.text.trim(), temperature: 0 })),
          usage,
        }),
      };
    case 'srt':
      return {
        contentType: 'text/plain; charset=utf-8',
        body: segments.map((s, i) => `${i + 1}\n${timestamp(s.start, ',')} --> ${timestamp(s.end, ',')}\n${s.text.trim()}\n`).join('\n'),
      };
    case 'vtt':
      return {
        contentType: 'text/vtt; charset=utf-8',
        body: `WEBVTT\n\n${segments.map((s) => `${timestamp(s.start, '.')} --> ${timestamp(s.end, '.')}\n${s.text.trim()}\n`).join('\n')}`,
      };
  }
}

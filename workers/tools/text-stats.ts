/** Built-in pool tool `text_stats`: counts like `wc` (lines, words, characters, UTF-8 bytes) of `text`. */
export interface TextStats {
  /** Lines, a final line without a newline included ("a\nb" and "a\nb\n" both have 2). */
  readonly lines: number;
  /** Runs of non-whitespace. */
  readonly words: number;
  /** Unicode code points, so an emoji counts once (not as its two UTF-16 units). */
  readonly chars: number;
  readonly bytes: number;
}

export default function textStats(args: { text: string }): TextStats {
  const { text } = args;
  let newlines = 0;
  let chars = 0;
  for (const ch of text) {
    chars++;
    if (ch === '\n') newlines++;
  }
  const lines = text === '' ? 0 : newlines + (text.endsWith('\n') ? 0 : 1);
  const words = text.match(/\S+/gu)?.length ?? 0;
  return { lines, words, chars, bytes: Buffer.byteLength(text, 'utf8') };
}

/** Built-in pool tool `echo`: returns its arguments unchanged (a round-trip check for the pool). */
export default function echo(args: unknown): unknown {
  return args;
}

/** What the CLI writes to and reads from: injected so tests can run `main` in-process. */
export interface CliIO {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A usage or connection problem: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function println(stream: { write(text: string): unknown }, line = ''): void {
  stream.write(`${line}\n`);
}

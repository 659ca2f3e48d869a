/**
 * jafw: the jaf-workflows command line. `main(argv, io)` answers an exit code (0 ok, 1 failed run or
 * invalid document, 2 usage or connection error) and writes only to `io`, so tests run it in-process.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { defaultDatabasePath } from '../store/sqlite-store.ts';
import { connect, describeServiceError, isServiceError, type Connection } from './client.ts';
import * as commands from './commands.ts';
import { EXIT_USAGE, UsageError, println, type CliIO } from './io.ts';
import { serve } from './serve.ts';

export type { CliIO } from './io.ts';

export const DEFAULT_ADDRESS = '127.0.0.1:50051';

export const USAGE = `Usage: jafw <command> [options]

Commands:
  serve [--port 50051] [--host 127.0.0.1] [--db ${defaultDatabasePath}] [--token T] [--insecure]
                               run a coordinator (built-in and example order tools, offline agents)
  validate FILE                check a YAML/JSON workflow document locally
  run FILE [--input JSON] [--request-id ID]
                               create the workflow and execute it, printing each step
  watch RUN [--after-seq N]    stream a run's events until it finishes
  get RUN                      print a run and its step results
  list [--workflow W] [--status S]
                               list runs
  cancel RUN                   cancel a run

Global options:
  --address HOST:PORT          coordinator address (default ${DEFAULT_ADDRESS}, env JAFW_ADDRESS)
  --token TOKEN                bearer token (env JAFW_TOKEN)
  -h, --help                   show this help

Exit codes: 0 ok, 1 run failed/cancelled or document invalid, 2 usage or connection error.`;

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL: Options = {
  address: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const COMMANDS: Record<string, { options: Options; positionals: number }> = {
  serve: { options: { port: { type: 'string' }, host: { type: 'string' }, db: { type: 'string' }, insecure: { type: 'boolean' } }, positionals: 0 },
  validate: { options: {}, positionals: 1 },
  run: { options: { input: { type: 'string' }, 'request-id': { type: 'string' } }, positionals: 1 },
  watch: { options: { 'after-seq': { type: 'string' } }, positionals: 1 },
  get: { options: {}, positionals: 1 },
  list: { options: { workflow: { type: 'string' }, status: { type: 'string' } }, positionals: 0 },
  cancel: { options: {}, positionals: 1 },
};

const ARG_NAMES: Record<string, string> = { validate: 'FILE', run: 'FILE', watch: 'RUN', get: 'RUN', cancel: 'RUN' };

function parseInteger(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a non-negative integer (got ${value})`);
  return Number(value);
}

export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  const env = io.env ?? process.env;
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    println(command === undefined ? io.stderr : io.stdout, USAGE);
    return command === undefined ? EXIT_USAGE : 0;
  }
  const spec = COMMANDS[command];
  if (spec === undefined) {
    println(io.stderr, `jafw: unknown command '${command}'\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  let conn: Connection | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: [...rest], options: { ...GLOBAL, ...spec.options }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError(`${command}: ${(err as Error).message}`);
    }
    const values = parsed.values as Record<string, string | boolean | undefined>;
    const str = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
    if (values.help === true) {
      println(io.stdout, USAGE);
      return 0;
    }
    if (parsed.positionals.length !== spec.positionals) {
      throw new UsageError(
        spec.positionals === 0
          ? `${command} takes no arguments (got ${parsed.positionals.join(' ')})`
          : `${command} needs exactly one ${ARG_NAMES[command]} argument`,
      );
    }
    const arg = parsed.positionals[0] ?? '';
    const token = str('token') ?? env.JAFW_TOKEN;
    const address = str('address') ?? env.JAFW_ADDRESS ?? DEFAULT_ADDRESS;

    switch (command) {
      case 'serve':
        return await serve(
          {
            host: str('host') ?? '127.0.0.1',
            port: parseInteger(str('port') ?? '50051', '--port'),
            db: str('db') ?? defaultDatabasePath,
            ...(token === undefined ? {} : { token }),
            insecure: values.insecure === true,
          },
          io,
        );
      case 'validate':
        return await commands.validate(arg, io);
    }
    conn = connect(address, token);
    switch (command) {
      case 'run': {
        const input = str('input');
        const requestId = str('request-id');
        return await commands.run(conn, arg, { ...(input === undefined ? {} : { input }), ...(requestId === undefined ? {} : { requestId }) }, io);
      }
      case 'watch': {
        const after = str('after-seq');
        return await commands.watch(conn, arg, after === undefined ? undefined : parseInteger(after, '--after-seq'), io);
      }
      case 'get':
        return await commands.get(conn, arg, io);
      case 'list': {
        const workflow = str('workflow');
        const status = str('status');
        return await commands.list(conn, { ...(workflow === undefined ? {} : { workflow }), ...(status === undefined ? {} : { status }) }, io);
      }
      default:
        return await commands.cancel(conn, arg, io);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      println(io.stderr, `jafw: ${err.message}`);
      return EXIT_USAGE;
    }
    if (isServiceError(err)) {
      println(io.stderr, `jafw ${command}: ${describeServiceError(err)}`);
      return EXIT_USAGE;
    }
    println(io.stderr, `jafw ${command}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_USAGE;
  } finally {
    conn?.close();
  }
}

/** Runs main() with the process's argv and streams, setting the exit code. */
export function runFromProcess(): void {
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 2;
    },
  );
}

// Run when executed directly (node dist/src/cli/main.js, or tsx src/cli/main.ts).
const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) runFromProcess();

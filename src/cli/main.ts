/**
 * jafw: the jaf-workflows command line. `main(argv, io)` answers an exit code (0 ok, 1 failed run or
 * invalid document, 2 usage or connection error) and writes only to `io`, so tests run it in-process.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { defaultDatabasePath } from '../store/sqlite-store.ts';
import type { TlsOptions } from '../grpc/server-config.ts';
import { connect, describeServiceError, isServiceError, type ClientTls, type Connection } from './client.ts';
import * as commands from './commands.ts';
import { EXIT_USAGE, UsageError, println, type CliIO } from './io.ts';
import { serve } from './serve.ts';

export type { CliIO } from './io.ts';

export const DEFAULT_ADDRESS = '127.0.0.1:50051';
/** Prometheus' registered default port for exporters of this kind is 9464 (the OpenTelemetry one); we use it too. */
export const DEFAULT_METRICS_PORT = 9464;

export const USAGE = `Usage: jafw <command> [options]

Commands:
  serve [--port 50051] [--host 127.0.0.1] [--db ${defaultDatabasePath}] [--token T] [--insecure]
        [--tls-cert F --tls-key F [--tls-client-ca F]] [--metrics-port ${DEFAULT_METRICS_PORT} | --no-metrics] [--metrics-host H]
        [--config FILE]        agents and module tools for declarative workflows (YAML, see README)
                               run a coordinator (built-in and example order tools, offline agents);
                               refuses a non-loopback --host with neither a token nor TLS unless --insecure
  validate FILE                check a YAML/JSON workflow document locally
  run FILE [--input JSON|@FILE] [--request-id ID] [--token-budget N] [--record | --replay-from RUN]
                               create the workflow and execute it, printing each step
                               (run and watch resume after the last seq if the stream breaks)
  watch RUN [--after-seq N]    stream a run's events until it finishes
  get RUN                      print a run and its step results
  list [--workflow W] [--status S]
                               list runs
  cancel RUN                   cancel a run

Global options:
  --address HOST:PORT          coordinator address (default ${DEFAULT_ADDRESS}, env JAFW_ADDRESS)
  --token TOKEN                bearer token (env JAFW_TOKEN)
  --ca FILE                    connect with TLS, trusting this CA (PEM); --cert/--key FILE add a client certificate (mTLS)
  --json                       print JSON lines (events, runs) instead of text
  -h, --help                   show this help

Exit codes: 0 ok, 1 run failed/cancelled or document invalid, 2 usage or connection error.`;

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL: Options = {
  address: { type: 'string' },
  token: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const COMMANDS: Record<string, { options: Options; positionals: number }> = {
  serve: {
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      db: { type: 'string' },
      insecure: { type: 'boolean' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-client-ca': { type: 'string' },
      'metrics-port': { type: 'string' },
      'metrics-host': { type: 'string' },
      'no-metrics': { type: 'boolean' },
      config: { type: 'string' },
    },
    positionals: 0,
  },
  validate: { options: {}, positionals: 1 },
  run: {
    options: { input: { type: 'string' }, 'request-id': { type: 'string' }, 'token-budget': { type: 'string' }, record: { type: 'boolean' }, 'replay-from': { type: 'string' } },
    positionals: 1,
  },
  watch: { options: { 'after-seq': { type: 'string' } }, positionals: 1 },
  get: { options: {}, positionals: 1 },
  list: { options: { workflow: { type: 'string' }, status: { type: 'string' } }, positionals: 0 },
  cancel: { options: {}, positionals: 1 },
};

const ARG_NAMES: Record<string, string> = { validate: 'FILE', run: 'FILE', watch: 'RUN', get: 'RUN', cancel: 'RUN' };

function clientTls(ca: string | undefined, cert: string | undefined, key: string | undefined): { tls?: ClientTls } {
  if (ca === undefined && cert === undefined && key === undefined) return {};
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key go together');
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`${flag}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return {
    tls: {
      ...(ca === undefined ? {} : { ca: read(ca, '--ca') }),
      ...(cert === undefined || key === undefined ? {} : { cert: read(cert, '--cert'), key: read(key, '--key') }),
    },
  };
}

function tlsOptions(cert: string | undefined, key: string | undefined, clientCa: string | undefined): { tls?: TlsOptions } {
  if (cert === undefined && key === undefined && clientCa === undefined) return {};
  if (cert === undefined || key === undefined) throw new UsageError('--tls-cert and --tls-key go together (and --tls-client-ca needs both)');
  return { tls: { cert, key, ...(clientCa === undefined ? {} : { clientCa }) } };
}

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
            ...tlsOptions(str('tls-cert'), str('tls-key'), str('tls-client-ca')),
            ...(values['no-metrics'] === true ? {} : { metricsPort: parseInteger(str('metrics-port') ?? String(DEFAULT_METRICS_PORT), '--metrics-port') }),
            ...(str('metrics-host') === undefined ? {} : { metricsHost: str('metrics-host')! }),
            ...(str('config') === undefined ? {} : { config: str('config')! }),
          },
          io,
        );
      case 'validate':
        return await commands.validate(arg, io);
    }
    const json = values.json === true;
    conn = connect(address, token, { ...clientTls(str('ca'), str('cert'), str('key')) });
    switch (command) {
      case 'run': {
        const input = str('input');
        const requestId = str('request-id');
        const budget = str('token-budget');
        const replayFrom = str('replay-from');
        return await commands.run(
          conn,
          arg,
          {
            json,
            ...(input === undefined ? {} : { input }),
            ...(requestId === undefined ? {} : { requestId }),
            ...(budget === undefined ? {} : { tokenBudget: parseInteger(budget, '--token-budget') }),
            ...(values.record === true ? { record: true } : {}),
            ...(replayFrom === undefined ? {} : { replayFrom }),
          },
          io,
        );
      }
      case 'watch': {
        const after = str('after-seq');
        return await commands.watch(conn, arg, after === undefined ? undefined : parseInteger(after, '--after-seq'), io, { json });
      }
      case 'get':
        return await commands.get(conn, arg, io, { json });
      case 'list': {
        const workflow = str('workflow');
        const status = str('status');
        return await commands.list(conn, { json, ...(workflow === undefined ? {} : { workflow }), ...(status === undefined ? {} : { status }) }, io);
      }
      default:
        return await commands.cancel(conn, arg, io, { json });
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

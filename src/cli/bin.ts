#!/usr/bin/env node
/** The `jafw` executable: runs main() with the process's argv and streams. */
import { main } from './main.ts';

main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 2;
  },
);

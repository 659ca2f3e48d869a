#!/usr/bin/env node
/** The `jafw` executable. */
import { runFromProcess } from './main.ts';

runFromProcess();

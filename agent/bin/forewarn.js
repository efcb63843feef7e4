#!/usr/bin/env node
// The `forewarn` command: runs the compiled agent (npm ci builds it), so a cold start pays for no transpiler.
import '../../dist/agent/src/cli.js';

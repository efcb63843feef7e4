#!/usr/bin/env node
/**
 * The entry of `forewarn` (agent/bin/forewarn.js, `npm start` and the service unit run it). It checks the Node.js
 * version (cli/node-version.ts) before it loads anything else, so an old Node says what to do instead of failing on
 * a missing API; the command line itself is cli/main.ts. Keep this file to syntax any Node.js with ES modules
 * (12.20 and later) understands, and its static imports to node-version.ts.
 */

import { nodeVersionProblem } from './cli/node-version.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  process.stderr.write(`forewarn: ${problem}`);
  // 1 as every failure that is not a usage or configuration error (docs/errors.md).
  process.exitCode = 1;
} else {
  void import('./cli/main.js').then((cli) => cli.runCommandLine(process.argv.slice(2)));
}

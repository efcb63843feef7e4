/**
 * The Node.js version check of the entry (agent/src/cli.ts), which imports this file alone before the version is
 * known to be good. Keep it to syntax and APIs that any Node.js with ES modules (12.20 and later) understands.
 */

/** package.json `engines.node` (a test keeps them equal). */
export const MIN_NODE_VERSION = '20.19.0';

/** Why `version` cannot run Forewarn, or null when it can. */
export function nodeVersionProblem(version: string, required = MIN_NODE_VERSION): string | null {
  const have = version.replace(/^v/, '').split('.').map(Number);
  const need = required.split('.').map(Number);
  for (let i = 0; i < need.length; i++) {
    const h = have[i] || 0;
    if (h > need[i]!) return null;
    if (h < need[i]!) {
      return (
        `Node.js ${required} or newer is needed; this is Node.js ${version} (${process.execPath}). ` +
        'Debian 12 ships Node.js 18: install Node.js 20 from NodeSource with\n' +
        '  curl -fsSL https://deb.nodesource.com/setup_20.x | sudo -E bash - && sudo apt-get install -y nodejs\n' +
        'then run `npm ci` again (README.md, Install). [FW_ERR_NODE_VERSION]\n'
      );
    }
  }
  return null;
}

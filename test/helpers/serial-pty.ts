import { spawnSync } from 'node:child_process';

/**
 * What serial-port tests need: socat to make a pty pair, and the serialport native binding. Installs Debian's socat
 * when it is missing and we are root (as the mosquitto helper does for the broker). Resolves to '' when both are
 * there, else to the reason the serial tests are skipped.
 */
export async function serialSkipReason(): Promise<string> {
  const hasSocat = () => spawnSync('socat', ['-V']).status === 0;
  const root = process.getuid?.() === 0;
  if (!hasSocat() && root) {
    const install = 'apt-get install -y socat || (apt-get update && apt-get install -y socat)';
    spawnSync('sh', ['-c', install], { stdio: 'ignore', timeout: 180_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (!hasSocat()) {
    return `socat is not installed${root ? ' and apt-get could not install it' : ' (not root: apt-get install -y socat)'}, so no pty pair can be made`;
  }
  try {
    await import('serialport');
  } catch (err) {
    return `the serialport native binding does not load here (${String(err)})`;
  }
  return '';
}

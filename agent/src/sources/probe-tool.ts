import { runTool } from './run-tool.js';
import { probeFail, probeOk, probeWarn, type ProbeCheck } from './plugin.js';

/** The longest a probe's tool run may take. */
export const PROBE_TOOL_TIMEOUT_MS = 10_000;

/** A tool is missing: a warning for the default name (the source just stays idle), a failure for a configured path. */
export async function probeTool(
  check: string,
  binary: string,
  defaultBinary: string,
  args: string[],
  what: string,
): Promise<{ check: ProbeCheck; found: boolean; stdout: string; stderr: string; code: number | null }> {
  const res = await runTool(binary, args, { timeoutMs: PROBE_TOOL_TIMEOUT_MS });
  if (res.spawnError) {
    const code = res.spawnError.code;
    const message = code === 'ENOENT' ? `${binary} not found${binary.includes('/') ? '' : ' on PATH'}` : `${binary} cannot be run: ${res.spawnError.message}`;
    const fix = `install ${what}, set the source's binary to its path, or disable the source`;
    return {
      check: binary === defaultBinary ? probeWarn(check, `${message}: the source will be unavailable`, fix) : probeFail(check, message, fix),
      found: false,
      stdout: '',
      stderr: '',
      code: null,
    };
  }
  if (res.timedOut)
    return {
      check: probeWarn(check, `${binary} ${args.join(' ')} timed out after ${PROBE_TOOL_TIMEOUT_MS} ms`, 'the tool hangs: check the device or driver'),
      found: true,
      stdout: '',
      stderr: '',
      code: null,
    };
  return { check: probeOk(check, `${binary} runs`), found: true, stdout: res.stdout, stderr: res.stderr, code: res.code };
}

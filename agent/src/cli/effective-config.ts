import { loadConfig, type LoadedConfig } from '../config/load-config.js';

/**
 * The configuration `forewarn run` runs with: FILE (or FOREWARN_CONFIG, or the defaults) with the FOREWARN_*
 * environment applied. `config check` and `config show` call this same function, so they judge and show exactly
 * what the agent would get.
 */
export function effectiveConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  return loadConfig(file, env);
}

/**
 * Which telemetry metrics get hourly rollups: glob patterns over metric names (`*` any run of characters, `?` one
 * character), e.g. `['*']` (all), `['gpu_*', 'temperature_*', 'vibration_rms']`. A name is matched once and the
 * answer cached: the projection asks for every metric of every record, and a fleet has few distinct names.
 */
export class MetricPatterns {
  private readonly regex: RegExp | null;
  private readonly cache = new Map<string, boolean>();
  /** Matching everything, the common case, skips the regex and the cache. */
  readonly all: boolean;
  /** No pattern: nothing is rolled up, and the records need not be read at all. */
  readonly none: boolean;

  constructor(patterns: readonly string[]) {
    this.all = patterns.includes('*');
    this.none = patterns.length === 0;
    this.regex = patterns.length && !this.all ? new RegExp(`^(?:${patterns.map(globToRegex).join('|')})$`) : null;
  }

  matches(name: string): boolean {
    if (this.all) return true;
    if (!this.regex) return false;
    let hit = this.cache.get(name);
    if (hit === undefined) {
      hit = this.regex.test(name);
      // Bounded: a misbehaving agent inventing names must not grow this without limit.
      if (this.cache.size < 10_000) this.cache.set(name, hit);
    }
    return hit;
  }
}

function globToRegex(glob: string): string {
  return glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
}

import { afterEach } from 'vitest';

/**
 * Undo steps for each test (stop a broker, kill a process, close a client), run after it in reverse order of
 * registration, awaited one by one. Call once at the top of a test file.
 */
export function cleanupAfterEach(): { push(fn: () => unknown): void } {
  const steps: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of steps.splice(0).reverse()) await step();
  });
  return { push: (fn) => void steps.push(fn) };
}

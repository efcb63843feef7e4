/**
 * The seam into the outbox: a stage that produces records to be committed (telemetry from the quality stage,
 * risk from scoring, events) hands them to a `RecordConsumer` and never names the writer. The agent's writer
 * (pipeline/storage-keeper.ts) batches what one tick produces into one transaction.
 */
import type { NewRecord } from './outbox.js';

export interface RecordConsumer {
  consumeRecords(records: readonly NewRecord[]): void;
}

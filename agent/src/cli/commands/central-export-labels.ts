import { DEFAULT_STORE } from '../../central/central-command.js';
import { EXPORT_LABELS_USAGE, exportLabelsCommand } from '../../central/labels/export-labels.js';
import type { CliCommand } from '../command.js';

/** `forewarn central export-labels`: its own entry, so that `--help` prints its usage rather than central's. */

export const centralExportLabels: CliCommand = {
  name: 'central export-labels',
  synopsis: 'forewarn central export-labels --since WHEN --model NAME',
  summary: "the readings before each alert a technician closed, labelled, in the model's training-recipe format",
  usage: EXPORT_LABELS_USAGE,
  run(argv) {
    return exportLabelsCommand(argv, DEFAULT_STORE);
  },
};

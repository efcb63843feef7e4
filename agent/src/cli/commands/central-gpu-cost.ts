import { DEFAULT_STORE } from '../../central/central-command.js';
import { GPU_COST_USAGE, gpuCostCommand } from '../../central/gpu-cost/gpu-cost-command.js';
import type { CliCommand } from '../command.js';

/** `forewarn central gpu-cost`: its own entry, so that `--help` prints its usage rather than central's. */

export const centralGpuCost: CliCommand = {
  name: 'central gpu-cost',
  synopsis: 'forewarn central gpu-cost --since WHEN [--until WHEN] [--by host|group|model|gpu] [--csv FILE] [--config FILE]',
  summary: "the daily cost of the fleet's GPUs: idle hours, failure downtime and energy, per host, group or model",
  usage: GPU_COST_USAGE,
  run(argv) {
    return gpuCostCommand(argv, DEFAULT_STORE);
  },
};

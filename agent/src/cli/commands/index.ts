import type { CliCommand } from '../command.js';
import { commandSend } from './command-send.js';
import { configCheck } from './config-check.js';
import { configShow } from './config-show.js';
import { doctor } from './doctor.js';
import { help } from './help.js';
import { modelBundle } from './model-bundle.js';
import { modelEval } from './model-eval.js';
import { modelInstall } from './model-install.js';
import { modelKeygen } from './model-keygen.js';
import { modelList } from './model-list.js';
import { modelProfile } from './model-profile.js';
import { modelRollback } from './model-rollback.js';
import { opcuaBrowse } from './opcua-browse.js';
import { run } from './run.js';
import { status } from './status.js';
import { subscribe } from './subscribe.js';
import { central } from './central.js';
import { centralExportLabels } from './central-export-labels.js';
import { centralGpuCost } from './central-gpu-cost.js';
import { centralUser } from './central-user.js';
import { version } from './version.js';

/**
 * The dispatch table of `forewarn`: one entry per subcommand, one file each in this folder. A new command is a new
 * file and one line here; the general help is generated from this list, in this order.
 */
export const COMMANDS: readonly CliCommand[] = [
  run,
  status,
  configCheck,
  configShow,
  doctor,
  modelEval,
  modelProfile,
  modelKeygen,
  modelBundle,
  modelInstall,
  modelList,
  modelRollback,
  central,
  centralUser,
  centralExportLabels,
  centralGpuCost,
  subscribe,
  commandSend,
  opcuaBrowse,
  version,
  help,
];

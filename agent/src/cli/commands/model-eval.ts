import path from 'node:path';
import { PACKAGE_ROOT } from '../../core/package-root.js';
import { evaluateModel } from '../../evaluation/evaluate-model.js';
import { evaluateRul } from '../../evaluation/evaluate-rul.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';

/** `forewarn model eval`: offline evaluation of a shipped model on labelled data. */

export const modelEval: CliCommand = {
  name: 'model eval',
  synopsis: 'forewarn model eval NAME --data FILE [--rul RUL.txt] [--json]',
  summary: 'score a labelled CSV (or a C-MAPSS test file and its true RULs) and print the metrics',
  usage: `forewarn model eval NAME --data FILE.csv [--json] [--threshold X] [--models-dir DIR]
forewarn model eval NAME --data TEST.txt --rul RUL.txt [--json] [--models-dir DIR]

Scores a labelled CSV with the model NAME and prints F1, precision, recall, PR-AUC, ROC-AUC and the confusion
matrix; with --rul, the RMSE and NASA score of a remaining-useful-life model on a C-MAPSS-format test file and
its true RULs, and the share of engines its calibrated interval covers (a model with outputs.interval).

  --data FILE         the labelled data
  --rul FILE          the true remaining useful lives, one per engine (RUL models)
  --threshold X       the decision threshold, 0 to 1 (default: the manifest's)
  --models-dir DIR    where the model folders are (default: the shipped models/)
  --json              print JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      this,
      argv,
      {
        json: { type: 'boolean', default: false },
        data: { type: 'string' },
        rul: { type: 'string' },
        threshold: { type: 'string' },
        'models-dir': { type: 'string' },
      },
      1,
    );
    const [name] = positionals;
    if (!name) usageError(this, 'expected `model eval NAME --data FILE.csv`');
    if (!values.data) usageError(this, 'model eval needs --data FILE.csv');
    const modelsDir = values['models-dir'] ?? path.join(PACKAGE_ROOT, 'models');
    if (values.rul) {
      const r = await evaluateRul(path.join(modelsDir, name), values.data, values.rul, { latencyRuns: 200 });
      process.stdout.write(
        values.json
          ? `${JSON.stringify(r, null, 2)}\n`
          : [
              `${r.model}@${r.version} on ${r.data}: ${r.engines} engines`,
              `RMSE ${r.rmse.toFixed(2)} cycles  NASA score ${r.nasaScore.toFixed(1)}  mean error ${r.meanError.toFixed(2)} (late ${r.late})  MAE ${r.mae.toFixed(2)}`,
              ...(r.interval
                ? [
                    `${Math.round(r.interval.level * 100)}% interval: covers ${r.interval.covered}/${r.engines} engines (${(r.interval.coverage * 100).toFixed(1)}%), mean width ${r.interval.meanWidth.toFixed(1)} cycles`,
                  ]
                : []),
              ...(r.latency ? [`one inference, one thread: median ${r.latency.medianMs.toFixed(3)} ms, p95 ${r.latency.p95Ms.toFixed(3)} ms`] : []),
            ].join('\n') + '\n',
      );
      return 0;
    }
    const threshold = values.threshold === undefined ? undefined : Number(values.threshold);
    if (threshold !== undefined && !(threshold >= 0 && threshold <= 1)) usageError(this, '--threshold must be between 0 and 1');
    const result = await evaluateModel(path.join(modelsDir, name), values.data, threshold === undefined ? {} : { threshold });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return 0;
    }
    const mm = result.metrics;
    const c = mm.confusion;
    process.stdout.write(
      [
        `${result.model}@${result.version} on ${result.data}: ${mm.rows} rows, ${mm.positives} positive${result.skipped.rows ? `, ${result.skipped.rows} skipped` : ''}`,
        `threshold ${mm.threshold}  F1 ${mm.f1.toFixed(4)}  precision ${mm.precision.toFixed(4)}  recall ${mm.recall.toFixed(4)}  PR-AUC ${mm.prAuc.toFixed(4)}  ROC-AUC ${mm.rocAuc.toFixed(4)}`,
        `confusion  TP ${c.tp}  FP ${c.fp}  FN ${c.fn}  TN ${c.tn}`,
        ...result.atFalseAlarms.map(
          (a) =>
            `at ${(a.rate * 100).toFixed(1)} % false alarms: detects ${(a.detectionRate * 100).toFixed(1)} % (threshold ${a.threshold.toPrecision(6)}, false alarms ${(a.falseAlarmRate * 100).toFixed(2)} %)`,
        ),
        ...(result.absentOptionalInputs.length ? [`read as missing in every row (no column): ${result.absentOptionalInputs.join(', ')}`] : []),
        ...Object.entries(result.breakdown).map(([k, b]) => `  ${k}: ${b.detected}/${b.positives} detected`),
      ].join('\n') + '\n',
    );
    return 0;
  },
};

/**
 * The `alerts` section of the configuration: the alert lifecycle (docs/alerts.md, "Lifecycle"). Kept in a file of
 * its own so the schema's other sections change independently. Rule ids are checked against the rule catalogue by
 * health (health/alert-lifecycle.ts `alertConfigProblems`), which config may not import.
 */
import { DAY_MS, schemaObject as obj, type SchemaNode } from '../core/schema-node.js';

const forMs = (what: string): SchemaNode => ({
  type: 'integer',
  description: `How long ${what} must hold before the alert is raised (Prometheus' \`for\`); until then it is pending. 0 raises at once.`,
  minimum: 0,
  maximum: DAY_MS,
});

const clearForMs = (what: string): SchemaNode => ({
  type: 'integer',
  description: `How long ${what} must hold before a raised alert is cleared. 0 clears at once.`,
  minimum: 0,
  maximum: 7 * DAY_MS,
});

export const ALERTS_SCHEMA: SchemaNode = obj('The alert lifecycle: how long a condition must hold to raise or clear an alert, and flapping (docs/alerts.md)', {
  flapping: obj('An alert that changes state too often in a window is marked flapping and held raised until it has been clear for a whole window', {
    maxChanges: {
      type: 'integer',
      description: 'Most raises and clears of one alert within `windowMs`; the change beyond it marks the alert flapping. 0 turns flapping detection off.',
      default: 6,
      minimum: 0,
      maximum: 1000,
    },
    windowMs: {
      type: 'integer',
      description: 'The window over which changes are counted, and how long a flapping alert must stay clear before it clears.',
      default: 3_600_000,
      minimum: 1000,
      maximum: 7 * DAY_MS,
    },
  }),
  risk: obj("Alerts raised by a model's operating threshold (`risk.threshold`)", {
    forMs: { ...forMs("a score beyond the model's threshold"), default: 2000 },
    clearForMs: { ...clearForMs('a score past the clear threshold'), default: 60_000 },
    hysteresis: {
      type: 'number',
      description:
        "Where a raised alert clears, as a share of the model's threshold: probability models clear below threshold × (1 − hysteresis), remaining-useful-life models above threshold × (1 + hysteresis). 0 clears at the threshold.",
      default: 0.25,
      minimum: 0,
      maximum: 1,
    },
    models: {
      type: 'object',
      description:
        'Per model name, overrides of `forMs`, `clearForMs`, and `clearThreshold` (an absolute score: below the threshold for probability models, above it for remaining-useful-life models).',
      default: {},
      additionalProperties: {
        type: 'object',
        description: "One model's alert lifecycle",
        additionalProperties: false,
        properties: {
          forMs: forMs("a score beyond this model's threshold"),
          clearForMs: clearForMs('a score past the clear threshold'),
          clearThreshold: { type: 'number', description: 'The score at which a raised alert clears.' },
        },
      },
    },
  }),
  rules: {
    type: 'object',
    description:
      'Per rule id (docs/alerts.md lists them and their defaults), overrides of `forMs`, `clearForMs` (for rules that clear after a quiet period: that period) and, for level rules compared with `>` or `<`, `clearValue` (clear at or below it for `>`, at or above it for `<`) or `hysteresis` (clear at threshold × (1 − hysteresis) for `>`, × (1 + hysteresis) for `<`).',
    default: {},
    additionalProperties: {
      type: 'object',
      description: "One rule's alert lifecycle",
      additionalProperties: false,
      properties: {
        forMs: forMs('the condition'),
        clearForMs: clearForMs('the clear condition'),
        clearValue: { type: 'number', description: 'The value at which a raised alert clears (hysteresis); wins over `hysteresis`.' },
        hysteresis: {
          type: 'number',
          description:
            "Where a raised alert clears, as a share of the rule's threshold (for rules compared with another signal, such as the ISO 10816-3 zone boundaries of each asset, where one clear value cannot fit every asset). 0 clears at the threshold.",
          minimum: 0,
          maximum: 1,
        },
      },
    },
  },
});

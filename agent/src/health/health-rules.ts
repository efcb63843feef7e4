/**
 * Health rules that need no model: conditions on the counters and flags the hardware reports, each raised as an
 * alert with a severity, evidence and a remedy. docs/alerts.md documents every rule (a test keeps them in step).
 *
 * Three kinds of condition:
 * - `level`: true while a metric satisfies a comparison; the alert clears when it no longer does.
 * - `growth`: true when a counter rose since the previous sample of the same asset; the alert clears after
 *   `quietMs` without further growth (the counter itself never goes down).
 * - `event`: a HealthEvent of a type (and code) raises it; it clears after `quietMs` without a recurrence.
 *
 * Lifecycle (health/alert-lifecycle.ts): a rule raises once its condition has held `forMs` (default 0: at once, as
 * every instant fact should: an uncorrectable error, a failed remap, an Xid) and clears once its clear condition
 * has held `clearForMs` (default 0); `alerts.rules.<id>` in the configuration overrides both.
 */

export type Severity = 'info' | 'warning' | 'critical';

interface RuleBase {
  id: string;
  title: string;
  severity: Severity;
  remedy: string;
  /** Default time the condition must hold before the alert is raised (0: at once). */
  forMs?: number;
  /** Default time a level rule's clear condition must hold before the alert clears (0: at once). */
  clearForMs?: number;
}

export interface LevelRule extends RuleBase {
  kind: 'level';
  /** Metric names it applies to; the first capture group, if any, names the subject (a link, a DIMM). */
  metric: RegExp;
  op: '>' | '<' | '==' | '!=';
  value: number;
  /** Another metric of the same reading to compare against instead of `value` (e.g. a spare threshold). */
  against?: (metric: string) => string;
  /**
   * Default hysteresis, as a share of the threshold: a raised alert clears at threshold × (1 − h) for `>`, × (1 + h)
   * for `<` (`alerts.rules.<id>.hysteresis` overrides it; an absolute `clearValue` wins over both).
   */
  hysteresis?: number;
  /** The evidence key under which the subject (the capture group) is given, e.g. `axis`. */
  subjectName?: string;
  /** Unit of the value and threshold, given in the evidence. */
  unit?: string;
}

export interface GrowthRule extends RuleBase {
  kind: 'growth';
  metric: RegExp;
  quietMs: number;
}

export interface EventRule extends RuleBase {
  kind: 'event';
  type: string;
  /** Event codes it applies to; absent means every code. */
  codes?: readonly number[];
  quietMs: number;
}

export type HealthRule = LevelRule | GrowthRule | EventRule;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * ISO 10816-3 vibration severity (docs/vibration.md): each acceleration channel's velocity RMS (10–1000 Hz, mm/s) against
 * the zone boundaries of its asset's machine group and foundation, which the node-stream source puts in the same
 * reading. Velocity at a boundary belongs to the zone below, so the comparison is strict. Measurements at start-up
 * (run-up through resonances) are not steady operation: a minute above the boundary before raising, and 10 % under
 * it for five minutes before clearing.
 */
const VIBRATION_ZONE = {
  kind: 'level' as const,
  metric: /^(.+)\.velocity_rms$/,
  op: '>' as const,
  value: 0, // unused: compared against the asset's boundary
  forMs: 60_000,
  clearForMs: 300_000,
  hysteresis: 0.1,
  subjectName: 'axis',
  unit: 'mm/s',
};

export const HEALTH_RULES: readonly HealthRule[] = [
  // GPUs
  {
    id: 'gpu.ecc.uncorrected',
    kind: 'level',
    metric: /^gpu\.ecc\.volatile\.uncorrected$/,
    op: '>',
    value: 0,
    severity: 'critical',
    title: 'GPU uncorrectable ECC errors since the last reset',
    remedy: "Drain the GPU's jobs and reset it (nvidia-smi -r). If uncorrectable errors return, or row remapping fails, replace the GPU.",
  },
  {
    id: 'gpu.remapped_rows.failure',
    kind: 'level',
    metric: /^gpu\.remapped_rows\.failure$/,
    op: '>',
    value: 0,
    severity: 'critical',
    title: 'GPU memory row remapping failed',
    remedy: 'The GPU has run out of spare memory rows. Take it out of service and open an RMA.',
  },
  {
    id: 'gpu.remapped_rows.pending',
    kind: 'level',
    metric: /^gpu\.remapped_rows\.pending$/,
    op: '>',
    value: 0,
    severity: 'warning',
    title: 'GPU memory row remap pending',
    remedy: 'A remap takes effect only after a GPU reset: drain the GPU and reset it at the next opportunity.',
  },
  {
    id: 'gpu.retired_pages.pending',
    kind: 'level',
    metric: /^gpu\.retired_pages\.pending$/,
    op: '>',
    value: 0,
    severity: 'warning',
    title: 'GPU retired memory pages pending',
    remedy: 'Page retirement takes effect after a reboot or GPU reset; schedule one. Many retired pages mean the memory is failing.',
  },
  {
    id: 'gpu.thermal_slowdown',
    kind: 'level',
    metric: /^gpu\.throttle\.(hw_thermal_slowdown|sw_thermal_slowdown)$/,
    op: '==',
    value: 1,
    // A state that follows the load, not a fault: only a lasting slowdown is worth an alert, and it clears once cool.
    forMs: 60_000,
    clearForMs: 300_000,
    severity: 'warning',
    title: 'GPU clocks reduced because it is too hot',
    remedy: 'Check the fans, airflow, inlet temperature and heatsink contact; a dusty or failed fan is the usual cause.',
  },
  {
    id: 'gpu.pcie.replays',
    kind: 'growth',
    metric: /^gpu\.pcie\.replays$/,
    quietMs: DAY,
    severity: 'warning',
    title: 'GPU PCIe link replaying packets',
    remedy:
      'Growing PCIe replays point at signal integrity: reseat the GPU or riser, check the slot and cables. A link that also downgrades its width or generation needs hardware service.',
  },
  {
    id: 'gpu.nvlink.errors',
    kind: 'growth',
    metric: /^gpu\.nvlink\.(\d+)\.(?:crc_errors|crc_flit_errors|crc_data_errors|replay_errors|recovery_errors)$/,
    quietMs: DAY,
    severity: 'warning',
    title: 'GPU NVLink errors growing',
    remedy: "Growing NVLink CRC or recovery errors point at a failing link or NVSwitch; run the vendor's field diagnostics and plan a service window.",
  },
  {
    id: 'gpu.xid',
    kind: 'event',
    type: 'gpu.xid',
    quietMs: HOUR,
    severity: 'warning',
    title: 'GPU reported an Xid error',
    remedy: "Read the Xid code's meaning in the alert evidence; the action depends on it (docs/alerts.md lists the codes).",
  },
  // Disks
  {
    id: 'disk.smart.failed',
    kind: 'level',
    metric: /^smart\.passed$/,
    op: '==',
    value: 0,
    severity: 'critical',
    title: 'Disk SMART overall health check failed',
    remedy: 'The drive predicts its own failure. Copy its data off and replace it.',
  },
  {
    id: 'disk.smart.reallocated_growing',
    kind: 'growth',
    metric: /^smart\.5\.raw$/,
    quietMs: 7 * DAY,
    severity: 'warning',
    title: 'Disk reallocated sector count growing',
    remedy: 'The drive is remapping bad sectors. Make sure its data is redundant or backed up, run a long self-test, and plan its replacement.',
  },
  {
    id: 'disk.smart.pending',
    kind: 'level',
    metric: /^smart\.197\.raw$/,
    op: '>',
    value: 0,
    severity: 'warning',
    title: 'Disk has sectors pending reallocation',
    remedy:
      'Unreadable sectors are waiting to be remapped. Run a long self-test; rewrite or restore the affected data; replace the drive if the count keeps growing.',
  },
  {
    id: 'disk.smart.offline_uncorrectable_growing',
    kind: 'growth',
    metric: /^smart\.(?:198|187)\.raw$/,
    quietMs: 7 * DAY,
    severity: 'warning',
    title: 'Disk uncorrectable errors growing',
    remedy: 'The drive reports sectors it could not read or correct. Check backups and replace the drive.',
  },
  {
    id: 'disk.nvme.critical_warning',
    kind: 'level',
    metric: /^nvme\.critical_warning$/,
    op: '!=',
    value: 0,
    severity: 'critical',
    title: 'NVMe drive raised a critical warning',
    remedy: 'The bits say why (spare below threshold, temperature, reliability degraded, read-only, backup failed): copy the data off and replace the drive.',
  },
  {
    id: 'disk.nvme.spare_low',
    kind: 'level',
    metric: /^nvme\.available_spare$/,
    op: '<',
    value: 0,
    against: () => 'nvme.available_spare_threshold',
    severity: 'warning',
    title: 'NVMe available spare below its threshold',
    remedy: 'The drive is near the end of its life. Plan its replacement.',
  },
  // Memory and PCIe
  {
    id: 'memory.ecc.uncorrected',
    kind: 'growth',
    metric: /^edac\.(mc\d+)\.ue_count$/,
    quietMs: 7 * DAY,
    severity: 'critical',
    title: 'Uncorrectable memory ECC errors',
    remedy: 'A DIMM returned data that ECC could not correct. Find the DIMM from the EDAC label and replace it.',
  },
  {
    id: 'memory.ecc.corrected_growing',
    kind: 'growth',
    metric: /^edac\.dimm\.([^.]+)\.ce_count$/,
    quietMs: DAY,
    severity: 'info',
    title: 'Corrected memory ECC errors on a DIMM',
    remedy: 'Occasional corrected errors are normal; a DIMM whose count keeps growing is likely to fail. Schedule its replacement if it grows daily.',
  },
  {
    id: 'pcie.aer.fatal',
    kind: 'growth',
    metric: /^pcie\.([^.]+)\.aer\.(?:fatal|nonfatal)_total$/,
    quietMs: DAY,
    severity: 'critical',
    title: 'PCIe uncorrectable errors (AER)',
    remedy:
      'A PCIe device or link reported an uncorrectable error. Check the device in the alert and its slot; errors counted at a root port may come from the device below it.',
  },
  // Vibration severity
  {
    ...VIBRATION_ZONE,
    id: 'vibration.iso10816.zone_c',
    against: () => 'iso10816.boundary_bc',
    severity: 'warning',
    title: 'Vibration velocity in ISO 10816-3 zone C (not for long-term operation)',
    remedy:
      'Vibration on this axis is beyond the B/C boundary of the machine group and foundation configured: the machine may run for a limited period only. Plan maintenance: check balance, alignment, looseness and bearings (the band energies and kurtosis of the same channel tell them apart), and check that the asset is configured with the right machine group and foundation.',
  },
  {
    ...VIBRATION_ZONE,
    id: 'vibration.iso10816.zone_d',
    against: () => 'iso10816.boundary_cd',
    severity: 'critical',
    title: 'Vibration velocity in ISO 10816-3 zone D (damage likely)',
    remedy:
      'Vibration on this axis is beyond the C/D boundary: severe enough to damage the machine. Reduce the load or stop the machine as soon as operations allow, and inspect bearings, coupling, alignment and mounting before it runs again.',
  },
];

export function compare(op: LevelRule['op'], a: number, b: number): boolean {
  switch (op) {
    case '>':
      return a > b;
    case '<':
      return a < b;
    case '==':
      return a === b;
    case '!=':
      return a !== b;
  }
}

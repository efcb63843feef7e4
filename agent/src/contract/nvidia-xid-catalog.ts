/**
 * NVIDIA Xid codes: what each one that matters for fleet health means and what to do. Part of the contract
 * because the GPU source names its counters by code (`gpu.xid.<code>.count`) and both the agent (the gpu.xid
 * alert, docs/alerts.md) and central (GPU downtime, docs/gpu-cost.md) read them by the same table.
 */
export interface XidInfo {
  name: string;
  meaning: string;
  severity: 'info' | 'warning' | 'critical';
  action: string;
}

/**
 * What the Xids that matter for fleet health mean and what to do, summarised from NVIDIA's Xid catalog
 * (docs.nvidia.com/deploy/xid-errors, "Analyzing Xid Errors with the Xid Catalog": mnemonic, immediate and
 * investigatory resolution buckets) and its dynamic page retirement / row remapping guides.
 */
export const XID_CATALOG: Record<number, XidInfo> = {
  8: {
    name: 'GPU stopped processing (idle timeout)',
    meaning: 'A channel stopped making progress; usually the application.',
    severity: 'warning',
    action: 'Restart the application; contact support if it recurs without an application cause.',
  },
  13: {
    name: 'Graphics engine exception',
    meaning: 'A kernel faulted inside the GPU (out-of-range address, illegal instruction); almost always an application or CUDA bug, rarely hardware.',
    severity: 'warning',
    action: 'Restart the application and debug it (compute-sanitizer); if several applications hit it on the same GPU, run diagnostics.',
  },
  31: {
    name: 'GPU memory page fault',
    meaning: 'The GPU MMU saw an access to an unmapped or protected address, usually an application bug, sometimes a driver fault.',
    severity: 'warning',
    action: 'Restart the application; investigate the application first, then the driver version if it persists.',
  },
  43: {
    name: 'GPU stopped processing (channel reset)',
    meaning: 'The driver reset a channel after a user-space fault; the GPU itself stays usable.',
    severity: 'info',
    action: 'No GPU action; look at the application and at other Xids logged at the same time.',
  },
  45: {
    name: 'Preemptive cleanup',
    meaning: 'The driver tore down channels because of an earlier error (often after an ECC error or a killed process).',
    severity: 'info',
    action: 'Follow the Xid that came before it; alone, restart the fabric manager if NVSwitch systems report it.',
  },
  46: {
    name: 'GPU stopped processing (timeout)',
    meaning: 'The GPU did not respond in time.',
    severity: 'critical',
    action: 'Drain the GPU and reset it; contact support if it recurs.',
  },
  48: {
    name: 'Double-bit ECC error',
    meaning: 'An uncorrectable memory error; applications using the memory are killed and the page or row is retired/remapped.',
    severity: 'critical',
    action: 'Drain and reset the GPU (or reboot) so the retirement/remap takes effect; check remapped rows and RMA thresholds.',
  },
  61: {
    name: 'Internal micro-controller breakpoint/warning',
    meaning: 'The GPU management micro-controller hit an internal breakpoint (older GPUs; unused on Ampere and later).',
    severity: 'warning',
    action: 'Collect nvidia-bug-report; reset the GPU if it is followed by hangs or Xid 62.',
  },
  62: {
    name: 'Internal micro-controller halt',
    meaning: 'The GPU management micro-controller halted; the GPU is in an undefined state.',
    severity: 'critical',
    action: 'Reset the GPU; contact support if it recurs.',
  },
  63: {
    name: 'Row remapping / page retirement recorded',
    meaning: 'A memory row was marked for remapping (page for retirement on older GPUs); it takes effect at the next reset.',
    severity: 'warning',
    action: 'Keep running; schedule a GPU reset at a convenient time to activate the remap. Not an RMA reason by itself.',
  },
  64: {
    name: 'Row remapping / page retirement failed',
    meaning: 'The faulty memory could not be remapped or retired (no spare rows left, or a remap failure).',
    severity: 'critical',
    action: 'Reset the GPU; if it repeats at the same address the GPU meets RMA criteria — contact support.',
  },
  68: {
    name: 'Video decoder (NVDEC) exception',
    meaning: 'The video decoder engine raised an exception.',
    severity: 'warning',
    action: 'Restart the application; contact support if it recurs.',
  },
  69: {
    name: 'Graphics engine class error',
    meaning: 'Invalid work was submitted to the graphics engine; typically an application or CUDA issue.',
    severity: 'warning',
    action: 'Restart the application and check it and its CUDA version.',
  },
  74: {
    name: 'NVLink error',
    meaning: 'An NVLink link reported a fatal error (the hex words say which); can be a bad link, cable/bridge or the GPU at the other end.',
    severity: 'critical',
    action: 'Check `nvidia-smi nvlink -e` / `-s`, reset the GPUs on both ends; persistent errors on a link need service.',
  },
  79: {
    name: 'GPU has fallen off the bus',
    meaning: 'The GPU stopped answering on PCIe (power, thermal, PCIe link or hardware failure); all work on it is lost.',
    severity: 'critical',
    action: 'Drain the node and reboot it; check power, cooling and seating; recurring events need service.',
  },
  92: {
    name: 'High single-bit ECC error rate',
    meaning: 'Correctable memory errors are arriving fast; the data is still corrected.',
    severity: 'warning',
    action: 'Keep running and watch ECC counters and remapped rows; contact support if the rate persists.',
  },
  94: {
    name: 'Contained uncorrectable ECC error',
    meaning: 'An uncorrectable memory error was contained to the applications using that memory; others keep running.',
    severity: 'warning',
    action: 'Restart the affected application; reset the GPU when convenient so the row remap activates.',
  },
  95: {
    name: 'Uncontained uncorrectable ECC error',
    meaning: 'An uncorrectable memory error could not be contained; every application on the GPU is affected.',
    severity: 'critical',
    action: 'Drain and reset the GPU now; check remapped rows for RMA criteria.',
  },
  109: {
    name: 'Context switch timeout',
    meaning: 'The GPU failed to switch contexts in time.',
    severity: 'critical',
    action: 'Reset the GPU; contact support if it recurs.',
  },
  119: {
    name: 'GSP RPC timeout',
    meaning: 'The GPU System Processor did not answer a driver request in time; the GPU usually stops working until reset.',
    severity: 'critical',
    action: 'Drain and reset the GPU (reboot if the reset fails); update the driver and report recurring events.',
  },
  120: {
    name: 'GSP error',
    meaning: 'The GPU System Processor firmware reported an error.',
    severity: 'critical',
    action: 'Drain and reset the GPU; update the driver and report recurring events.',
  },
  140: { name: 'Unrecovered ECC error', meaning: 'An ECC error escaped recovery.', severity: 'critical', action: 'Reset the GPU; contact support.' },
  154: {
    name: 'GPU recovery action changed',
    meaning: 'The driver changed the action the GPU needs (none, GPU reset, node reboot, drain P2P, drain and reset), usually after another Xid.',
    severity: 'critical',
    action: 'Do what the new recovery action says (the message names it) and follow the Xid that triggered it.',
  },
};

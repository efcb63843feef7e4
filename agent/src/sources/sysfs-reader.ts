import { promises as fsp } from 'node:fs';

/** How sysfs sources read their tree: injectable, so tests read fixtures and faults. Shared by the EDAC and PCIe AER sources. */
export interface SysfsReader {
  readFile(file: string): Promise<string>;
  readdir(dir: string): Promise<string[]>;
}
export const NODE_FS: SysfsReader = { readFile: (f) => fsp.readFile(f, 'utf8'), readdir: (d) => fsp.readdir(d) };

import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { hostInventory, inventoryOf } from '../../../../agent/src/sources/host/host-inventory.js';

describe('hostInventory', () => {
  it('describes this host through systeminformation, run in a process of its own', async () => {
    const inv = await hostInventory();
    expect(inv['os.platform']).toBe('linux');
    expect(inv['os.hostname']).toBe(os.hostname());
    expect(inv['memory.total_bytes']).toBe(os.totalmem());
    expect(inv['cpu.cores']).toBeGreaterThanOrEqual(1);
  });

  it('keeps what could be read, leaves out what could not, and says booleans and unknown speeds plainly', () => {
    const inv = inventoryOf([
      null,
      { manufacturer: ' QEMU ', model: '', virtual: true } as never,
      { manufacturer: 'Intel', brand: 'Xeon', cores: 2, physicalCores: 1, speed: 0 } as never,
      { total: 8_000_000_000 } as never,
    ]);
    expect(inv).toEqual({
      'system.manufacturer': 'QEMU',
      'system.virtual': 'true',
      'cpu.manufacturer': 'Intel',
      'cpu.brand': 'Xeon',
      'cpu.cores': 2,
      'cpu.physical_cores': 1,
      'memory.total_bytes': 8_000_000_000,
    });
    expect(inventoryOf([null, null, null, null])).toEqual({});
  });
});

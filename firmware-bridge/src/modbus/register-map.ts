/**
 * A Modbus register map: which value of a device is which signal of which asset. The library's shape of a device
 * map; the agent's Modbus source (agent/src/sources/modbus) reads devices by it and the simulators serve one.
 */
import type { Endianness, ModbusDataType } from './register-codec.js';
import type { RegisterType } from './read-plan.js';

/** One value of the device map. Descriptions of every field: MODBUS_SIGNAL_SCHEMA in agent/src/sources/modbus/modbus-source.ts. */
export interface ModbusSignalConfig {
  asset: string; // e.g. `sim-mill-1`
  signal: string; // e.g. `torque`, the name a model's manifest asks for
  unitId?: number; // default the device's
  registerType: RegisterType;
  address: number; // 0-based protocol address (40001 in 1-based notation is holding register 0)
  dataType?: ModbusDataType; // registers only; default uint16
  byteOrder?: Endianness; // default the device's
  wordOrder?: Endianness; // default the device's
  scale?: number; // value = raw × scale + offset; default 1
  offset?: number; // default 0
  unit?: string; // engineering unit of the scaled value, e.g. `K`, `rpm`, `N.m`
  intervalMs?: number; // default the device's
}

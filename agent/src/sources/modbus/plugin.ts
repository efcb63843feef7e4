import { defineSource } from '../plugin.js';
import { MODBUS_SOURCES_SCHEMA, ModbusSource, type ModbusDeviceConfig } from './modbus-source.js';

/** Modbus TCP/RTU devices, one source per configured device. */
export const modbusPlugin = defineSource<'modbus', { devices: ModbusDeviceConfig[] }>({
  key: 'modbus',
  schema: MODBUS_SOURCES_SCHEMA,
  create: (config, { sink, log }) => config.devices.filter((d) => d.enabled).map((d) => new ModbusSource(d, sink, log)),
});

import { withoutDefault } from '../../core/schema-node.js';
import { defineSource } from '../plugin.js';
import { NodeStreamSource, nodeStreamConfigSchema, type NodeStreamConfig } from './node-stream-source.js';

/** Microcontroller sensor nodes speaking the node protocol, one source per configured link. */
export const nodeStreamPlugin = defineSource<'nodeStreams', NodeStreamConfig[]>({
  key: 'nodeStreams',
  schema: {
    type: 'array',
    description:
      'Microcontroller sensor nodes speaking the Forewarn node protocol (docs/firmware-protocol.md), one entry per serial port, TCP endpoint or UDP port.',
    default: [],
    items: withoutDefault(nodeStreamConfigSchema),
  },
  create: (config, { sink, events, log }) => config.filter((n) => n.enabled).map((n) => new NodeStreamSource(n, sink, events, log)),
});

import mqtt from 'mqtt';

/** What a plain MQTT 5 subscriber received: the test's view of the broker. */
export interface ReceivedMessage {
  topic: string;
  payload: Record<string, unknown>;
  retain: boolean;
}

/** Subscribes to `filter` and collects every message as parsed JSON; `onCleanup` receives the disconnect. */
export async function listen(url: string, filter: string, onCleanup: (undo: () => Promise<unknown>) => void): Promise<ReceivedMessage[]> {
  const messages: ReceivedMessage[] = [];
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `listener-${process.pid}-${Math.random()}` });
  client.on('message', (topic, payload, packet) =>
    messages.push({ topic, payload: JSON.parse(String(payload)) as Record<string, unknown>, retain: packet.retain }),
  );
  await client.subscribeAsync(filter, { qos: 1 });
  onCleanup(() => client.endAsync());
  return messages;
}

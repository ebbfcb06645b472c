/**
 * Commands on `$fleet/{id}/commands/#`: emitted as events and passed to the handler; when the
 * command carries an MQTT 5 response topic, the handler's result (or error) is published there
 * with the command's correlation data.
 */
import type { IClientPublishOptions, IPublishPacket } from 'mqtt';
import { DeviceError } from './errors.js';

export interface Command {
  /** Topic suffix after `$fleet/{id}/commands/`, e.g. `reboot`. */
  name: string;
  topic: string;
  payload: Buffer;
  /** Parsed JSON payload, or undefined when it is not JSON. */
  data: unknown;
  responseTopic: string | null;
  correlationData: Buffer | null;
}

/** A command handler; when the command has a response topic, the result is published there. */
export type CommandHandler = (command: Command) => unknown;

export interface CommandChannelDeps {
  /** The device's publish (rejects when not connected). */
  publish(topic: string, payload: string, options: IClientPublishOptions): Promise<void>;
  command(command: Command): void;
  error(err: Error): void;
}

export class CommandChannel {
  /** `$fleet/{id}/commands/`: what precedes the command name. */
  readonly prefix: string;
  readonly #deps: CommandChannelDeps;
  #handler: CommandHandler | null = null;

  constructor(prefix: string, deps: CommandChannelDeps) {
    this.prefix = prefix;
    this.#deps = deps;
  }

  onCommand(handler: CommandHandler): void {
    this.#handler = handler;
  }

  handle(topic: string, payload: Buffer, packet: IPublishPacket): void {
    let data: unknown;
    try {
      data = payload.length ? JSON.parse(payload.toString('utf8')) : undefined;
    } catch {
      data = undefined;
    }
    const command: Command = {
      name: topic.slice(this.prefix.length),
      topic,
      payload,
      data,
      responseTopic: packet.properties?.responseTopic ?? null,
      correlationData: packet.properties?.correlationData ?? null,
    };
    this.#deps.command(command);
    const handler = this.#handler;
    if (!handler) return;
    void (async () => {
      let response: { ok: boolean; result?: unknown; error?: string };
      try {
        response = { ok: true, result: await handler(command) };
      } catch (err) {
        this.#deps.error(new DeviceError('BW_ERR_DEVICE_HANDLER', `command ${command.name}`, { cause: err }));
        response = { ok: false, error: (err as Error)?.message ?? String(err) };
      }
      if (command.responseTopic === null) return;
      const options: IClientPublishOptions = { qos: 1 };
      if (command.correlationData) options.properties = { correlationData: command.correlationData };
      await this.#deps
        .publish(command.responseTopic, JSON.stringify(response), options)
        .catch((err: Error) => this.#deps.error(err));
    })();
  }
}

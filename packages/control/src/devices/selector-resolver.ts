import type { Selector } from '../selector.js';
import type { DeviceRepository } from './model.js';

/**
 * Resolves a selector to device ids, the entry point later kill switches use. Thin over the
 * repository so callers depend on one function rather than on storage.
 */
export class SelectorResolver {
  readonly #devices: DeviceRepository;

  constructor(devices: DeviceRepository) {
    this.#devices = devices;
  }

  resolve(selector: Selector): Promise<string[]> {
    return this.#devices.resolve(selector);
  }

  count(selector: Selector): Promise<number> {
    return this.#devices.count(selector);
  }
}

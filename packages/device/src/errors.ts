/**
 * Errors raised by the device SDK. Each has a stable `BW_ERR_DEVICE_*` code (same scheme as the
 * server's catalog in @breakwater/broker, which this package must not depend on) and, where one
 * applies, the MQTT reason code it came from.
 */
export const DeviceErrorCatalog = {
  BW_ERR_DEVICE_OPTIONS_INVALID: { message: 'invalid device options' },
  BW_ERR_DEVICE_NOT_CONNECTED: { message: 'device is not connected' },
  BW_ERR_DEVICE_STOPPED: { message: 'device was stopped' },
  BW_ERR_DEVICE_CONNECT_REFUSED: { message: 'broker refused the connection' },
  BW_ERR_DEVICE_CONNECT_FAILED: { message: 'connection to the broker failed' },
  BW_ERR_DEVICE_TOKEN_PROVIDER: { message: 'token provider failed' },
  BW_ERR_DEVICE_HANDLER: { message: 'a device handler threw' },
  BW_ERR_DEVICE_OOB_SEND: { message: 'out-of-band report could not be delivered' },
  BW_ERR_DEVICE_OTA_JOB_INVALID: { message: 'OTA job is invalid' },
  BW_ERR_DEVICE_OTA_DOWNLOAD: { message: 'OTA download failed' },
  BW_ERR_DEVICE_OTA_TOO_LARGE: { message: 'OTA artifact exceeds the size limit' },
  BW_ERR_DEVICE_OTA_CHECKSUM: { message: 'OTA artifact sha256 does not match' },
  BW_ERR_DEVICE_OTA_CANCELLED: { message: 'OTA job was cancelled' },
  BW_ERR_DEVICE_OTA_APPLY: { message: 'OTA apply failed' },
} as const satisfies Record<string, { message: string }>;

export type DeviceErrorCode = keyof typeof DeviceErrorCatalog;

export class DeviceError extends Error {
  readonly code: DeviceErrorCode;
  /** MQTT reason code (v5) or return code (v3.1.1), when the error came from the broker. */
  readonly reasonCode: number | undefined;

  constructor(code: DeviceErrorCode, detail?: string, options?: { cause?: unknown; reasonCode?: number }) {
    const spec = DeviceErrorCatalog[code];
    super(
      detail ? `${spec.message}: ${detail}` : spec.message,
      options?.cause ? { cause: options.cause } : undefined,
    );
    this.name = 'DeviceError';
    this.code = code;
    this.reasonCode = options?.reasonCode;
  }
}

/**
 * A device's connection state as the broker last reported it. A leaf module: selectors filter on
 * it and the device registry stores it, and neither may import the other's module for it.
 */
export const connectionStates = ['online', 'offline', 'unknown'] as const;
/** `unknown`: the broker never reported this device (registered, never connected). */
export type ConnectionState = (typeof connectionStates)[number];

/**
 * The error catalog: every error Breakwater raises has a stable code (`BW_ERR_*`), a message, and
 * where one applies the MQTT reason code or HTTP status it maps to. docs/errors.md lists them, and
 * a test checks that the two agree.
 */
export interface ErrorSpec {
  readonly message: string;
  readonly reasonCode?: number;
  readonly httpStatus?: number;
}

export const ErrorCatalog = {
  BW_ERR_CONFIG_INVALID: { message: 'invalid configuration', httpStatus: 400 },
  BW_ERR_CONFIG_FILE: { message: 'configuration file cannot be read or parsed' },
  BW_ERR_PORT_IN_USE: { message: 'port is already in use' },
  BW_ERR_LISTEN: { message: 'cannot listen on the address' },
  BW_ERR_MALFORMED_PACKET: { message: 'malformed packet', reasonCode: 0x81 },
  BW_ERR_PROTOCOL: { message: 'protocol error', reasonCode: 0x82 },
  BW_ERR_PACKET_TOO_LARGE: { message: 'packet exceeds the maximum packet size', reasonCode: 0x95 },
  BW_ERR_TOPIC_NAME_INVALID: { message: 'topic name is invalid', reasonCode: 0x90 },
  BW_ERR_TOPIC_FILTER_INVALID: { message: 'topic filter is invalid', reasonCode: 0x8f },
  BW_ERR_STORAGE: { message: 'storage operation failed', reasonCode: 0x80 },
  BW_ERR_CLUSTER: { message: 'cluster (NATS JetStream) unavailable', reasonCode: 0x88 },
  // Control plane HTTP API (packages/control): the JSON error body carries the code.
  BW_ERR_API_VALIDATION: { message: 'request is invalid', httpStatus: 400 },
  BW_ERR_API_UNAUTHENTICATED: { message: 'missing or invalid API key', httpStatus: 401 },
  BW_ERR_API_FORBIDDEN: { message: 'the API key role does not allow this action', httpStatus: 403 },
  BW_ERR_API_NOT_FOUND: { message: 'not found', httpStatus: 404 },
  BW_ERR_API_CONFLICT: { message: 'already exists', httpStatus: 409 },
  BW_ERR_API_PAYLOAD_TOO_LARGE: { message: 'request body is too large', httpStatus: 413 },
  BW_ERR_API_UNSUPPORTED_MEDIA_TYPE: { message: 'unsupported content type', httpStatus: 415 },
  BW_ERR_API_RATE_LIMITED: { message: 'too many requests', httpStatus: 429 },
  BW_ERR_API_INTERNAL: { message: 'internal error', httpStatus: 500 },
  BW_ERR_API_UNREACHABLE: { message: 'control-plane API cannot be reached' },
  BW_ERR_DEVICE_CREDENTIALS: { message: 'device id or secret is wrong', httpStatus: 401 },
  BW_ERR_SIGNING_KEY: { message: 'signing key cannot be loaded', httpStatus: 500 },
  // Guard (issue 3): authentication backends answer 0x88 Server Unavailable, never a deny.
  BW_ERR_GUARD_CONFIG: { message: 'invalid guard configuration' },
  BW_ERR_AUTH_BACKEND: { message: 'authentication backend failed', reasonCode: 0x88 },
  BW_ERR_AUTH_TIMEOUT: { message: 'authentication backend timed out', reasonCode: 0x88 },
  BW_ERR_AUTH_BREAKER_OPEN: { message: 'authentication backend circuit breaker is open', reasonCode: 0x88 },
  BW_ERR_AUTH_RATE_LIMITED: { message: 'authentication backend query-rate cap reached', reasonCode: 0x88 },
  BW_ERR_AUTH_BULKHEAD_FULL: { message: 'too many authentication backend calls in flight', reasonCode: 0x88 },
  BW_ERR_AUTH_HASH_FORMAT: { message: 'unsupported password hash format', reasonCode: 0x88 },
  BW_ERR_PASSWORD_FILE: { message: 'password file cannot be read or written' },
  BW_ERR_AUTHZ_RULE: { message: 'authorization rule is invalid' },
  // Broker admin API (break-glass) and the CLI commands that call it.
  BW_ERR_ADMIN_TOKEN: { message: 'admin token cannot be read or created' },
  BW_ERR_ADMIN_UNREACHABLE: { message: 'broker admin API cannot be reached' },
  BW_ERR_ADMIN_REQUEST: { message: 'broker admin API refused the request' },
  BW_ERR_AUDIT_LOG: { message: 'audit log cannot be written', httpStatus: 500 },
  // Incidents (issue 7).
  BW_ERR_INCIDENT_TRANSITION: { message: 'the incident cannot make this state change', httpStatus: 409 },
  // OTA campaigns (issue 5, kill switch 3).
  BW_ERR_CAMPAIGN_STATE: { message: 'campaign state does not allow this', httpStatus: 409 },
  // Data integration (issue 16).
  BW_ERR_SINK_UNAVAILABLE: { message: 'the sink cannot take messages now' },
  BW_ERR_SINK_REJECTED: { message: 'the sink rejected the message' },
  BW_ERR_TELEMETRY_INVALID: { message: 'the payload fails its topic schema' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ErrorCatalog;

export class BreakwaterError extends Error {
  readonly code: ErrorCode;
  readonly reasonCode: number | undefined;
  readonly httpStatus: number | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ErrorCatalog[code];
    super(detail ? `${spec.message}: ${detail}` : spec.message, options);
    this.name = 'BreakwaterError';
    this.code = code;
    this.reasonCode = spec.reasonCode;
    this.httpStatus = spec.httpStatus;
  }
}

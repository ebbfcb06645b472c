/**
 * MQTT 5 reason codes (MQTT 5.0 §2.4) and MQTT 3.1.1 CONNACK return codes (§3.2.2.3), as names.
 * Code never uses the bare numbers: `ReasonCode.PacketTooLarge`, not `0x95`.
 */
export const ReasonCode = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

export type ReasonCodeName = keyof typeof ReasonCode;
export type ReasonCodeValue = (typeof ReasonCode)[ReasonCodeName];

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
export const ConnackReturnCode = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const;

export type ConnackReturnCodeValue = (typeof ConnackReturnCode)[keyof typeof ConnackReturnCode];

/**
 * Maps an MQTT 5 CONNACK reason code to the closest MQTT 3.1.1 return code, so one refusal path
 * serves both protocol versions (load refusals become "server unavailable", as DESIGN.md §3 says).
 */
export function toV3ConnackCode(reason: number): ConnackReturnCodeValue {
  switch (reason) {
    case ReasonCode.Success:
      return ConnackReturnCode.Accepted;
    case ReasonCode.UnsupportedProtocolVersion:
      return ConnackReturnCode.UnacceptableProtocolVersion;
    case ReasonCode.ClientIdentifierNotValid:
      return ConnackReturnCode.IdentifierRejected;
    case ReasonCode.BadUserNameOrPassword:
    case ReasonCode.BadAuthenticationMethod:
      return ConnackReturnCode.BadUserNameOrPassword;
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
      return ConnackReturnCode.NotAuthorized;
    default:
      return ConnackReturnCode.ServerUnavailable;
  }
}

const names = new Map<number, string>();
for (const [name, value] of Object.entries(ReasonCode)) if (!names.has(value)) names.set(value, name);

/** Human name of a reason code, for logs and reason strings. */
export function reasonCodeName(code: number): string {
  return names.get(code) ?? `0x${code.toString(16)}`;
}

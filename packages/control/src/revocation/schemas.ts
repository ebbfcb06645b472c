/** JSON schemas (TypeBox) of the revocation routes. */
import { type Static, Type } from '@sinclair/typebox';
import { iso, isoOrNull } from '../http/context.js';
import { Limit, Reason } from '../http/schemas.js';
import { DeviceIdSchema, SelectorSchema } from '../selector.js';
import { type RevocationRecord, revocationKinds } from './types.js';

const strict = { additionalProperties: false } as const;
const Iso = Type.String({ description: 'ISO 8601 timestamp (UTC).' });
const NullableIso = Type.Union([Iso, Type.Null()]);
const Kind = Type.Union(
  revocationKinds.map((k) => Type.Literal(k)),
  { description: '`device`, `selector`, `token`, or `all` (every token issued before `issuedBefore`).' },
);
const TokenId = Type.String({ minLength: 1, maxLength: 200, description: 'A token id (`jti`).' });

export const RevokeBody = Type.Object(
  {
    deviceId: Type.Optional(DeviceIdSchema),
    selector: Type.Optional(SelectorSchema),
    tokenId: Type.Optional(TokenId),
    issuedBefore: Type.Optional(
      Type.String({
        minLength: 3,
        maxLength: 40,
        description:
          'ISO 8601 or `now`: revoke tokens issued (JWT `iat`) before it — of `deviceId` / the `selector` ' +
          'devices, or, alone, of every client. Without it, the devices themselves are revoked.',
      }),
    ),
    reason: Type.Optional(Reason),
  },
  {
    ...strict,
    description: 'Exactly one of deviceId, selector, tokenId; or issuedBefore alone.',
  },
);
export type RevokeBodyT = Static<typeof RevokeBody>;

const ActorRef = Type.Object({ id: Type.String(), name: Type.String() });

export const RevocationView = Type.Object({
  id: Type.String(),
  kind: Kind,
  active: Type.Boolean(),
  deviceId: Type.Union([Type.String(), Type.Null()]),
  selector: Type.Union([SelectorSchema, Type.Null()]),
  tokenId: Type.Union([Type.String(), Type.Null()]),
  issuedBefore: NullableIso,
  deviceCount: Type.Integer({
    description: 'Devices it names (resolved at creation); for token/all, the live sessions it ended.',
  }),
  reason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Iso,
  createdBy: ActorRef,
  revertedAt: NullableIso,
  revertedBy: Type.Union([ActorRef, Type.Null()]),
});

export function revocationView(r: RevocationRecord): Static<typeof RevocationView> {
  return {
    id: r.id,
    kind: r.kind,
    active: r.revertedAt === null,
    deviceId: r.deviceId,
    selector: r.selector,
    tokenId: r.tokenId,
    issuedBefore: isoOrNull(r.issuedBefore),
    deviceCount: r.deviceCount,
    reason: r.reason,
    createdAt: iso(r.createdAt),
    createdBy: r.createdBy,
    revertedAt: isoOrNull(r.revertedAt),
    revertedBy: r.revertedBy,
  };
}

const Warnings = Type.Array(Type.String(), {
  description: 'What could not be done (no broker attached, broker without authentication, …).',
});

const Reach = {
  matchedDevices: Type.Integer({ description: 'Devices named, or (token / all) live sessions matched.' }),
  disconnected: Type.Integer({ description: 'Live sessions ended (MQTT 5: DISCONNECT 0x87).' }),
  purgedRetained: Type.Integer({ description: 'Retained messages they had published, deleted.' }),
  purgedWills: Type.Integer({ description: 'Pending wills dropped (never published).' }),
  warnings: Warnings,
};

export const CreatedRevocation = Type.Object({ revocation: RevocationView, ...Reach });

export const KillswitchRevokeResult = Type.Object({
  action: Type.Literal('revoke'),
  revocationId: Type.String(),
  kind: Kind,
  ...Reach,
});

export const RevocationDetail = Type.Object({
  revocation: RevocationView,
  deviceIds: Type.Array(Type.String(), { description: 'Every device it names.' }),
});

export const RevertedRevocation = Type.Object({
  revocation: RevocationView,
  released: Type.Integer({ description: 'Denylist entries removed.' }),
  stillRevoked: Type.Integer({ description: 'Entries kept: another active revocation covers them.' }),
  warnings: Warnings,
});

export const RevocationIdParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }) },
  strict,
);

export const ListRevocationsQuery = Type.Object(
  {
    active: Type.Optional(Type.Boolean({ description: 'true: in force; false: reverted.' })),
    kind: Type.Optional(Kind),
    deviceId: Type.Optional(DeviceIdSchema),
    tokenId: Type.Optional(TokenId),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400 })),
  },
  strict,
);

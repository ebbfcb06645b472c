import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { dummySecretHash, verifyDeviceSecret } from '../devices/secret.js';
import { ApiError } from '../errors.js';
import type { MintedToken } from '../tokens/issuer.js';
import { audit, iso, isoOrNull, type RouteContext } from './context.js';
import {
  DeviceTokenBody,
  errorResponses,
  Jwk,
  MintTokenBody,
  RotateBody,
  SigningKeyView,
  TokenView,
} from './schemas.js';

function tokenView(t: MintedToken): Static<typeof TokenView> {
  return {
    token: t.token,
    tokenId: t.jti,
    kid: t.kid,
    issuedAt: iso(t.iat * 1000),
    expiresAt: iso(t.exp * 1000),
  };
}

/** Routes under /api. */
export function tokenRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { storage, issuer, limiter } = ctx;

  app.post<{ Body: Static<typeof MintTokenBody> }>(
    '/v1/tokens',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['tokens'],
        summary: 'Mint a device token (JWT: sub = device id, jti, iat, exp, iss, aud; EdDSA).',
        body: MintTokenBody,
        response: { 201: TokenView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { deviceId, ttl } = request.body;
      if (ttl > issuer.maxTtlSec) {
        throw new ApiError('BW_ERR_API_VALIDATION', `body.ttl must be <= ${issuer.maxTtlSec}`, {
          field: 'ttl',
        });
      }
      if (!(await storage.devices.get(deviceId)))
        throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${deviceId}`);
      const minted = await issuer.mint(deviceId, ttl);
      // The token exists once signed; the audit entry records its id so it can be revoked later.
      await audit(storage, ctx, request, {
        action: 'token.mint',
        targetType: 'device',
        targetId: deviceId,
        details: { jti: minted.jti, kid: minted.kid, exp: iso(minted.exp * 1000) },
      });
      return reply.code(201).send(tokenView(minted));
    },
  );

  app.post<{ Body: Static<typeof DeviceTokenBody> }>(
    '/v1/device-token',
    {
      config: { access: 'public' },
      schema: {
        tags: ['tokens'],
        summary: 'Device-facing: exchange the device secret for a short-lived token. No API key.',
        description:
          'Rate limited per device id (429 with retry-after). Unknown id and wrong secret both answer 401 ' +
          'BW_ERR_DEVICE_CREDENTIALS, in the same time.',
        security: [],
        body: DeviceTokenBody,
        response: { 200: TokenView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { deviceId, secret } = request.body;
      const retryAfter = limiter.take(deviceId);
      if (retryAfter > 0) {
        reply.header('retry-after', String(retryAfter));
        throw new ApiError('BW_ERR_API_RATE_LIMITED', `device ${deviceId}: retry in ${retryAfter} s`);
      }
      const hash = await storage.devices.secretHash(deviceId);
      const ok = await verifyDeviceSecret(secret, hash ?? (await dummySecretHash()));
      if (!hash || !ok) throw new ApiError('BW_ERR_DEVICE_CREDENTIALS');
      return tokenView(await issuer.mint(deviceId, ctx.deviceTokenTtlSec));
    },
  );

  app.get(
    '/v1/tokens/keys',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary:
          'Signing keys: the active one and retired ones (in the JWKS until their last token expires).',
        response: { 200: Type.Object({ items: Type.Array(SigningKeyView) }), ...errorResponses },
      },
    },
    async () => ({
      items: (await issuer.keys()).map((k) => ({
        kid: k.kid,
        createdAt: iso(k.createdAt),
        retiredAt: isoOrNull(k.retiredAt),
        inJwksUntil: isoOrNull(k.inJwksUntil),
      })),
    }),
  );

  app.post<{ Body: Static<typeof RotateBody> | undefined }>(
    '/v1/tokens/keys/rotate',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'Rotate the signing key. Tokens signed by the old key stay valid until they expire.',
        body: Type.Optional(RotateBody),
        response: {
          200: Type.Object({ kid: Type.String(), retired: Type.Array(Type.String()) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const result = await issuer.rotate();
      await audit(storage, ctx, request, {
        action: 'signingkey.rotate',
        targetType: 'signingkey',
        targetId: result.kid,
        details: { retired: result.retired },
      });
      return result;
    },
  );
}

/** `/.well-known/jwks.json`: public, outside /api, cacheable for a few minutes. */
export function jwksRoute(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    '/.well-known/jwks.json',
    {
      config: { access: 'public' },
      schema: {
        tags: ['tokens'],
        summary: 'Public keys for verifying device tokens (RFC 7517). No API key.',
        security: [],
        response: { 200: Type.Object({ keys: Type.Array(Jwk) }), ...errorResponses },
      },
    },
    async (_request, reply) => {
      // Short max-age: verifiers pick up a rotation quickly; the broker refreshes on unknown kid anyway.
      reply.header('cache-control', 'public, max-age=300');
      return ctx.issuer.jwks();
    },
  );
}

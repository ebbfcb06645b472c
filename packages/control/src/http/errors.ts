/**
 * One error shape for every control-plane response: `{ error: { code, message, field? } }`.
 * Validation errors name the field (ajv's instancePath / missingProperty / additionalProperty);
 * framework errors (body too large, bad JSON, wrong media type) get catalog codes too.
 */
import { BreakwaterError, ErrorCatalog, type ErrorCode } from '@breakwater/broker';
import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** `/rows/3/id` → `rows[3].id` (with prefix), `/tags/0` → `tags[0]`. */
export function fieldPath(pointer: string, prefix = ''): string {
  let out = prefix;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out;
}

export function describeAjvError(e: ErrorObject, prefix = ''): { field: string; message: string } {
  let pointer = e.instancePath;
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'required') {
    pointer += `/${(e.params as { missingProperty: string }).missingProperty}`;
    message = 'is required';
  } else if (e.keyword === 'additionalProperties') {
    pointer += `/${(e.params as { additionalProperty: string }).additionalProperty}`;
    message = 'is not a known field';
  } else if (e.keyword === 'pattern') {
    message = `has an invalid format (must match ${(e.params as { pattern: string }).pattern})`;
  }
  const field = fieldPath(pointer, prefix) || prefix || 'body';
  return { field, message };
}

function body(code: ErrorCode, message: string, field?: string): ErrorBody {
  return { error: field === undefined ? { code, message } : { code, message, field } };
}

const statusCodes: Partial<Record<number, ErrorCode>> = {
  400: 'BW_ERR_API_VALIDATION',
  401: 'BW_ERR_API_UNAUTHENTICATED',
  403: 'BW_ERR_API_FORBIDDEN',
  404: 'BW_ERR_API_NOT_FOUND',
  409: 'BW_ERR_API_CONFLICT',
  413: 'BW_ERR_API_PAYLOAD_TOO_LARGE',
  415: 'BW_ERR_API_UNSUPPORTED_MEDIA_TYPE',
  429: 'BW_ERR_API_RATE_LIMITED',
};

export function errorHandler(
  error: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const fe = error as FastifyError & { validationContext?: string };
  if (fe.validation) {
    const first = fe.validation[0] as ErrorObject | undefined;
    const prefix = (request.routeOptions.config as { bodyFieldPrefix?: string }).bodyFieldPrefix;
    const where = fe.validationContext ?? 'body';
    const { field, message } = first
      ? describeAjvError(first, where === 'body' ? (prefix ?? '') : '')
      : { field: where, message: 'is invalid' };
    const loc = where === 'querystring' ? 'query' : where;
    return reply.code(400).send(body('BW_ERR_API_VALIDATION', `${loc}.${field} ${message}`, field));
  }
  if (error instanceof BreakwaterError && error.httpStatus !== undefined && error.httpStatus < 500) {
    const field = error instanceof ApiError ? error.field : undefined;
    return reply.code(error.httpStatus).send(body(error.code, error.message, field));
  }
  const status = fe.statusCode ?? 500;
  if (status < 500 && !(error instanceof BreakwaterError)) {
    const code = statusCodes[status] ?? 'BW_ERR_API_VALIDATION';
    // Framework errors (FST_ERR_CTP_*): the catalog message plus fastify's explanation.
    const field = code === 'BW_ERR_API_VALIDATION' ? 'body' : undefined;
    return reply.code(status).send(body(code, `${ErrorCatalog[code].message}: ${error.message}`, field));
  }
  // 5xx: the cause goes to the log, never to the client.
  request.log.error({ err: error }, 'control plane request failed');
  return reply.code(500).send(body('BW_ERR_API_INTERNAL', ErrorCatalog.BW_ERR_API_INTERNAL.message));
}

export function notFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply
    .code(404)
    .send(body('BW_ERR_API_NOT_FOUND', `not found: ${request.method} ${request.url.split('?')[0]}`));
}

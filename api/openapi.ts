import {
  OpenAPIRegistry,
  OpenApiGeneratorV31,
  extendZodWithOpenApi,
  type RouteConfig,
} from '@asteasolutions/zod-to-openapi';
import type { Express, NextFunction, Request, Response } from 'express';
import { AppError, isAppError, type ErrorCode } from '../lib/errors.js';
import { z, type AnyZodObject, type ZodTypeAny } from 'zod';
import { ALL_EVENT_DATA } from '../domain/event-catalogue.js';
import { PACKAGE_VERSION } from '../lib/package-info.js';
import type { Authenticator } from './auth/authenticator.js';
import { PERMISSIONS, type Permission } from './auth/permissions.js';
import { principalOf, type Principal } from './auth/principal.js';
import { assertStorableInput, parseInput } from './validate.js';

extendZodWithOpenApi(z);

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  req: Request;
  res: Response;
}

export interface AuthedInput<P, Q, B> extends RouteInput<P, Q, B> {
  principal: Principal;
}

interface RouteBase<P extends AnyZodObject, Q extends AnyZodObject, B extends ZodTypeAny> {
  method: Method;
  /** Express path syntax (`/nexus/v3/apikeys/:id`); documented as `/nexus/v3/apikeys/{id}`. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  params?: P;
  query?: Q;
  body?: B;
  /** Also accept `application/x-www-form-urlencoded` bodies (documented alongside JSON). */
  form?: boolean;
  responses: Record<number, { description: string; schema?: ZodTypeAny }>;
}

export type PublicRoute<
  P extends AnyZodObject,
  Q extends AnyZodObject,
  B extends ZodTypeAny,
> = RouteBase<P, Q, B> & {
  auth: 'public';
  /**
   * Authenticates the request itself before its input is read (a signature over the raw body,
   * say): a request that fails it is refused before any validation answer.
   */
  verify?: (req: Request) => Promise<void>;
  handle(input: RouteInput<z.infer<P>, z.infer<Q>, z.infer<B>>): Promise<void> | void;
};

export type AuthedRoute<
  P extends AnyZodObject,
  Q extends AnyZodObject,
  B extends ZodTypeAny,
> = RouteBase<P, Q, B> & {
  /** The permission the route needs (docs/permissions.md), or any valid credential. */
  auth: Permission | 'authenticated';
  /** Answer missing or invalid credentials (401) with this code instead (the chat widget's). */
  authFailure?: ErrorCode;
  handle(input: AuthedInput<z.infer<P>, z.infer<Q>, z.infer<B>>): Promise<void> | void;
};

const empty = z.object({});

/**
 * A declared route's input checks and handler, without the authentication middleware before them
 * (for a public route, the whole route): what the hot path (api/hot-path.ts) runs on a request
 * whose `params`, `query` and `body` it parsed itself.
 */
export type RouteRunner = (req: Request, res: Response) => Promise<void>;

/** The error envelope every failure answers with. */
export const errorEnvelope = z
  .object({
    status: z.object({
      code: z.string().openapi({ example: 'NEXUS_ERR_VALIDATION' }),
      message: z.string(),
      field: z.string().optional().openapi({ example: 'body.name' }),
    }),
  })
  .openapi('Error');

/** `{status: {code: 0}, data, operationId}`: the guide's success envelope. */
export const envelopeOf = <T extends ZodTypeAny>(data: T) =>
  z.object({ status: z.object({ code: z.literal(0) }), data, operationId: z.string().optional() });

/**
 * Routes are declared once: the declaration mounts the Express handler (authentication,
 * permission, rate limit, validation of params / query / body) and documents the operation in
 * the OpenAPI 3.1 document served at `/nexus/v3/openapi.json`.
 */
export class Api {
  readonly registry = new OpenAPIRegistry();
  private readonly documented = new Set<string>();

  constructor(
    private readonly app: Express,
    private readonly auth: Authenticator | undefined,
  ) {
    this.registry.registerComponent('securitySchemes', 'apiKey', {
      type: 'apiKey',
      in: 'header',
      name: 'x-api-key',
      description: 'An API key; `x-ccid` names the tenant where the guide sends it.',
    });
    for (const [type, schema] of Object.entries(ALL_EVENT_DATA)) {
      this.registry.register(`EventData.${type}`, schema);
    }
    this.registry.registerComponent('securitySchemes', 'operatorToken', {
      type: 'http',
      scheme: 'bearer',
      description:
        'The admin token or an operator JWT, as `Authorization: Bearer <token>` (or the bare token, as the guide sends it).',
    });
  }

  route<
    P extends AnyZodObject = typeof empty,
    Q extends AnyZodObject = typeof empty,
    B extends ZodTypeAny = typeof empty,
  >(spec: PublicRoute<P, Q, B> | AuthedRoute<P, Q, B>): RouteRunner {
    this.document(spec);
    const handlers = [];
    if (spec.auth !== 'public') {
      if (!this.auth) throw new Error(`route ${spec.path} needs authentication`);
      const authenticate = this.auth.require(spec.auth === 'authenticated' ? undefined : spec.auth);
      const failure = spec.authFailure;
      handlers.push(
        failure
          ? async (req: Request, res: Response, next: NextFunction) => {
              try {
                await authenticate(req, res, next);
              } catch (error) {
                if (isAppError(error) && error.status === 401) {
                  throw new AppError(failure, error.message, error.field, { cause: error });
                }
                throw error;
              }
            }
          : authenticate,
      );
    }
    const run: RouteRunner = async (req, res) => {
      if (spec.auth === 'public') await spec.verify?.(req);
      // Every string of the input, declared or not, before any schema or handler reads it.
      assertStorableInput(req.params, 'params');
      assertStorableInput(req.query, 'query');
      assertStorableInput(req.body, 'body');
      const input = {
        params: parseInput(spec.params ?? empty, req.params, 'params') as z.infer<P>,
        query: parseInput(spec.query ?? empty, req.query, 'query') as z.infer<Q>,
        body: (spec.body ? parseInput(spec.body, req.body, 'body') : undefined) as z.infer<B>,
        req,
        res,
      };
      if (spec.auth === 'public') await spec.handle(input);
      else await spec.handle({ ...input, principal: principalOf(req) });
    };
    handlers.push(run);
    this.app[spec.method](spec.path, ...handlers);
    return run;
  }

  /** `METHOD /path/{param}` of every documented operation. */
  operations(): ReadonlySet<string> {
    return this.documented;
  }

  document(spec: RouteBase<AnyZodObject, AnyZodObject, ZodTypeAny> & { auth: string }): void {
    const path = spec.path.replace(/:(\w+)/g, '{$1}');
    this.documented.add(`${spec.method.toUpperCase()} ${path}`);
    const responses: RouteConfig['responses'] = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      responses[status] = response.schema
        ? {
            description: response.description,
            content: { 'application/json': { schema: response.schema } },
          }
        : { description: response.description };
    }
    responses.default = {
      description: 'An error, in the error envelope (docs/errors.md lists the codes)',
      content: { 'application/json': { schema: errorEnvelope } },
    };
    const permission =
      spec.auth === 'public' || spec.auth === 'authenticated'
        ? undefined
        : (spec.auth as Permission);
    this.registry.registerPath({
      method: spec.method,
      path,
      summary: spec.summary,
      description: [
        spec.description,
        permission ? `Needs \`${permission}\`: ${PERMISSIONS[permission]}` : undefined,
      ]
        .filter(Boolean)
        .join('\n\n'),
      tags: [spec.tag],
      security: spec.auth === 'public' ? [] : [{ apiKey: [] }, { operatorToken: [] }],
      'x-permission': permission,
      request: {
        params: spec.params,
        query: spec.query,
        body: spec.body
          ? {
              required: true,
              content: {
                'application/json': { schema: spec.body },
                ...(spec.form
                  ? { 'application/x-www-form-urlencoded': { schema: spec.body } }
                  : {}),
              },
            }
          : undefined,
      },
      responses,
    });
  }

  openapi() {
    return new OpenApiGeneratorV31(this.registry.definitions).generateDocument({
      openapi: '3.1.0',
      info: {
        title: 'Nexus Digital Channels hub API',
        version: PACKAGE_VERSION,
        description:
          'Provisioning, API keys, operations and (as they ship) chat, SMS and webhooks. Errors use the envelope `{status: {code, message, field}}`.',
      },
      servers: [{ url: '/' }],
    });
  }
}

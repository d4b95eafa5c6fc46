import express, { type Request, type Response, type Router } from 'express';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { parseInput } from '../../api/validate.js';
import {
  deleteProvider,
  listProviders,
  replaceArticles,
  upsertProvider,
} from '../../db/queries/athena.js';
import { AppError } from '../../lib/errors.js';
import type { SecretBox } from '../../lib/secrets.js';
import { ModelInputError, trainModel } from '../nlu/builtin/model.js';
import { NLU_PROVIDER_NAMES } from '../nlu/index.js';
import { providerSecretContext } from '../providers.js';
import type { CallerAuth } from './caller-auth.js';

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const PROVIDER_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const providerBody = z
  .object({
    provider: z.enum(NLU_PROVIDER_NAMES as [string, ...string[]], {
      errorMap: () => ({ message: `must be one of ${NLU_PROVIDER_NAMES.join(', ')}` }),
    }),
    url: z.string().url().max(2_000).optional(),
    /**
     * The provider's own keys (a Dialogflow project, a Lex bot…) beside the ones every
     * provider takes: its time limit and the bot's handoff rules (docs/ai-connector.md).
     */
    data: z
      .object({
        languageCode: z
          .string()
          .regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/)
          .optional(),
        timeoutMs: z.number().int().min(100).max(60_000).optional(),
        handoffKeywords: z.array(z.string().trim().min(1).max(100)).max(100).optional(),
        maxMisses: z.number().int().min(1).max(20).optional(),
        minConfidence: z.number().min(0).max(1).optional(),
        fallbackText: z.string().trim().min(1).max(1_000).optional(),
        /** The routing queues and chat endpoints whose conversations this entry serves. */
        queues: z.array(z.string().min(1).max(255)).max(1_000).optional(),
        endpoints: z.array(z.string().min(1).max(255)).max(1_000).optional(),
      })
      .passthrough()
      .default({}),
    secret: z.record(z.unknown()).optional(),
    /** The built-in provider's training data (athena/nlu/builtin/model.ts): trained on save. */
    training: z.unknown().optional(),
  })
  .strict();

const articlesBody = z
  .object({
    articles: z
      .array(
        z
          .object({
            id: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be 1-128 of A-Z a-z 0-9 _ . -'),
            title: z.string().trim().min(1).max(500),
            body: z.string().trim().min(1).max(20_000),
            url: z.string().url().max(2_000).optional(),
          })
          .strict(),
      )
      .max(2_000),
  })
  .strict();

export interface SettingsDeps {
  db: DatabasePool;
  auth: CallerAuth;
  secrets: SecretBox;
}

const ok = (res: Response, status: number, data: unknown) =>
  res.status(status).json({ status: { code: 0 }, data });

function tenantOf(req: Request): string {
  const tenant = String(req.params.ccid);
  if (!TENANT_ID.test(tenant)) {
    throw new AppError('NEXUS_ERR_VALIDATION', 'ccid is not a tenant id', 'path.ccid');
  }
  return tenant;
}

/**
 * A tenant's connector settings, for whoever may provision the tenant on the hub:
 * - `PUT ai/{ccid}/providers/{name}` `{provider, url?, data?, secret?, training?}`: an NLU
 *   provider's settings (`default` is the one conversations use). `secret` is sealed and never
 *   answered back. For `builtin`, `training` (intents with examples, entity lists, patterns,
 *   handoff intents) is trained at once into `data.model`; bad training data is a 400 naming
 *   every problem and nothing is stored.
 * - `GET ai/{ccid}/providers`, `DELETE ai/{ccid}/providers/{name}`.
 * - `PUT ai/{ccid}/articles` `{articles: [{id, title, body, url?}]}`: replaces the knowledge
 *   articles agent assist searches (PostgreSQL full-text search).
 */
export function settingsRoutes(deps: SettingsDeps): Router {
  const routes = express.Router();
  const json = express.json({ limit: '4mb' });

  routes.put('/ai/:ccid/providers/:name', json, async (req, res) => {
    const tenant = tenantOf(req);
    await deps.auth.assertProvisioner(req, tenant);
    const name = String(req.params.name);
    if (!PROVIDER_NAME.test(name)) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        'name must be 1-64 of A-Z a-z 0-9 _ -',
        'path.name',
      );
    }
    const body = parseInput(providerBody, req.body, 'body');
    let data = body.data;
    if (body.provider === 'builtin') {
      if (body.training === undefined && data.model === undefined) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          'the built-in provider needs training',
          'training',
        );
      }
      if (body.training !== undefined) {
        try {
          data = { ...data, model: trainModel(body.training) };
        } catch (error) {
          if (!(error instanceof ModelInputError)) throw error;
          throw new AppError('NEXUS_ERR_VALIDATION', error.message, 'training');
        }
      }
    } else if (body.training !== undefined) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        'only the builtin provider is trained here',
        'training',
      );
    }
    await upsertProvider(deps.db, tenant, {
      name,
      provider: body.provider,
      url: body.url ?? null,
      data,
      secret_sealed: body.secret
        ? deps.secrets.seal(body.secret, providerSecretContext(tenant, name))
        : null,
    });
    ok(res, 200, { name, provider: body.provider });
  });

  routes.get('/ai/:ccid/providers', async (req, res) => {
    const tenant = tenantOf(req);
    await deps.auth.assertProvisioner(req, tenant);
    const rows = await listProviders(deps.db, tenant);
    ok(
      res,
      200,
      rows.map(row => ({
        name: row.name,
        provider: row.provider,
        url: row.url,
        // The trained model is the connector's, not the caller's: its size is shown.
        data: Object.fromEntries(Object.entries(row.data).filter(([key]) => key !== 'model')),
        trained: row.data.model !== undefined,
        hasSecret: row.secret_sealed !== null,
      })),
    );
  });

  routes.delete('/ai/:ccid/providers/:name', async (req, res) => {
    const tenant = tenantOf(req);
    await deps.auth.assertProvisioner(req, tenant);
    if (!(await deleteProvider(deps.db, tenant, String(req.params.name)))) {
      throw new AppError('NEXUS_ERR_NOT_FOUND', 'No such provider', 'path.name');
    }
    ok(res, 200, {});
  });

  routes.put('/ai/:ccid/articles', json, async (req, res) => {
    const tenant = tenantOf(req);
    await deps.auth.assertProvisioner(req, tenant);
    const { articles } = parseInput(articlesBody, req.body, 'body');
    const ids = new Set(articles.map(article => article.id));
    if (ids.size !== articles.length) {
      throw new AppError('NEXUS_ERR_VALIDATION', 'article ids must be unique', 'articles');
    }
    await deps.db.transaction(tx =>
      replaceArticles(
        tx,
        tenant,
        articles.map(article => ({ ...article, url: article.url ?? null })),
      ),
    );
    ok(res, 200, { articles: articles.length });
  });

  return routes;
}

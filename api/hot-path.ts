import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../lib/logger.js';
import { sendError } from './error-handler.js';
import type { RouteRunner } from './openapi.js';
import { observeRequest, type ContextBinder } from './request-context.js';

/**
 * The hot path: the routes every chat message takes, answered before Express's router.
 *
 * Express sets the prototypes of every request and response, and walks its middleware and route
 * list for each; on the customer's message send that was a tenth of the API process's CPU in the
 * chat bench (docs/performance.md). A hot route keeps everything else the app does for it, in the
 * same order and with the same functions: the request context and access log, the request
 * metrics under the declared route, CORS, the app's JSON and form body parsers, and the declared
 * route's own input checks and handler ({@link RouteRunner}), whose errors end in the app's error
 * answer. Only the plain case is taken: the method, a path whose parameters are plain
 * (letters, digits, `_`, `-`), no query string; anything else (an escaped or odd parameter, a
 * query, another method, a preflight) goes to Express, which answers as it always did.
 */

export interface HotRoute {
  method: 'POST';
  /** The declared Express path (`/chat/v3/chat/sessions/:sessionId/messages`). */
  path: string;
  run: RouteRunner;
  /** Answers `Access-Control-Allow-Origin: *`, as the app's CORS for the chat prefixes. */
  cors: boolean;
}

export interface HotPathDeps {
  routes: readonly HotRoute[];
  /** The app's request context (api/request-context.ts). */
  context: ContextBinder;
  /** The app's body parsers, run in the app's order. */
  parsers: readonly RequestHandler[];
  log: Logger;
}

interface Compiled {
  route: HotRoute;
  pattern: RegExp;
  params: readonly string[];
}

/** Matches a declared path as Express does (case-insensitive, an optional trailing slash). */
function compile(route: HotRoute): Compiled {
  const params: string[] = [];
  const source = route.path
    .split('/')
    .map(segment => {
      if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      params.push(segment.slice(1));
      return '([\\w-]{1,128})';
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}/?$`, 'i'), params };
}

const parse = (parser: RequestHandler, req: IncomingMessage, res: ServerResponse) =>
  new Promise<void>((resolve, reject) => {
    // A parser's error is body-parser's http-error, which the error answer maps to its code.
    parser(req as Request, res as Response, (error?: unknown) => {
      if (error === undefined || error === null) resolve();
      else {
        reject(error instanceof Error ? error : new Error('body parser failed', { cause: error }));
      }
    });
  });

/**
 * The function in front of the app: answers a hot route's request and says so, or leaves the
 * request to Express.
 */
export function hotPath(deps: HotPathDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const compiled = deps.routes.map(compile);
  const serve = async (
    { route, params }: Compiled,
    match: RegExpExecArray,
    req: IncomingMessage,
    res: ServerResponse,
  ) => {
    observeRequest(req, res, () => route.path);
    deps.context(req, res, () => undefined);
    if (route.cors) res.setHeader('Access-Control-Allow-Origin', '*');
    try {
      for (const parser of deps.parsers) await parse(parser, req, res);
      const values: Record<string, string> = {};
      params.forEach((name, index) => (values[name] = match[index + 1] as string));
      Object.assign(req, { params: values, query: {} });
      await route.run(req as Request, res as Response);
    } catch (error) {
      sendError(error, req, res, deps.log);
    }
  };
  return (req, res) => {
    const url = req.url;
    if (!url) return false;
    for (const entry of compiled) {
      if (req.method !== entry.route.method) continue;
      const match = entry.pattern.exec(url);
      if (!match) continue;
      void serve(entry, match, req, res);
      return true;
    }
    return false;
  };
}

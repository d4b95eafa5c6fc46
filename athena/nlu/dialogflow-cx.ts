import { z } from 'zod';
import { googleApiRequest, serviceAccountOf, tokenUrlOf } from './dialogflow-auth.js';
import {
  clip,
  DIALOGFLOW_TEXT_LIMIT,
  dialogflowEndpoint,
  dialogflowSessionId,
  handoffIntentsOf,
  locationOf,
  parameterEntities,
  parseAnswer,
  sentimentOf,
  stringSetting,
} from './dialogflow-es.js';
import { nluNotConfigured, type NluProvider, type NluSettings } from './provider.js';

/**
 * Dialogflow CX (API v3), `projects.locations.agents.sessions.detectIntent`:
 * `POST https://{location}-dialogflow.googleapis.com/v3/projects/{p}/locations/{l}/agents/{a}/sessions/{s}:detectIntent`
 * (`dialogflow.googleapis.com` for `global`), or `…/agents/{a}/environments/{e}/sessions/{s}` for
 * an environment. The body is `{queryInput: {text: {text}, languageCode}}` (plus
 * `queryParams.analyzeQueryTextSentiment` when `data.sentiment` is true); the token is the
 * service account's (dialogflow-auth.ts).
 *
 * Settings: `data.projectId`, `data.agentId`, `data.location` (default `global`); optional
 * `data.environment`, `data.languageCode` (else the turn's), `data.sentiment`,
 * `data.handoffIntents` (intent display names), `data.endpoint` and `data.tokenUrl` (tests);
 * `secret` the service account key.
 *
 * The answer's `queryResult`: `match.intent.displayName` and `match.confidence` are the intent,
 * none when `match.matchType` is `NO_MATCH` or `NO_INPUT` or no intent matched (parameter filling,
 * an event); the match's `parameters` are the entities (the session's `parameters` when there is
 * no match: they gather every turn's); every `responseMessages[].text.text[]` is a reply; any
 * `responseMessages[].liveAgentHandoff` (the agent's "live agent handoff" fulfillment), or a
 * matched intent named in `data.handoffIntents`, is a handoff;
 * `sentimentAnalysisResult.score` is the sentiment.
 *
 * Shapes follow the v3 REST reference (google-api-python-client
 * docs/dyn/dialogflow_v3.projects.locations.agents.sessions.html) and the `Match` message of
 * google-cloud-dialogflow-cx (`dialogflowcx_v3/types/session.py`).
 */

const PROVIDER = 'dialogflow-cx';

const NO_INTENT = new Set(['NO_MATCH', 'NO_INPUT']);

const CxAnswer = z.object({
  queryResult: z.object({
    match: z
      .object({
        intent: z.object({ displayName: z.string().optional() }).optional(),
        matchType: z.string().optional(),
        confidence: z.number().optional(),
        parameters: z.record(z.unknown()).optional(),
      })
      .optional(),
    parameters: z.record(z.unknown()).optional(),
    responseMessages: z
      .array(
        z.object({
          text: z.object({ text: z.array(z.string()).optional() }).optional(),
          liveAgentHandoff: z.object({ metadata: z.unknown().optional() }).optional(),
        }),
      )
      .optional(),
    sentimentAnalysisResult: z.object({ score: z.number().optional() }).optional(),
  }),
});

function detectIntentUrl(settings: NluSettings, sessionId: string): string {
  const projectId = stringSetting(settings.data, 'projectId');
  const agentId = stringSetting(settings.data, 'agentId');
  if (!projectId || !agentId) {
    throw nluNotConfigured(`${PROVIDER}: data.projectId and data.agentId are required`);
  }
  const location = locationOf(settings.data, PROVIDER) ?? 'global';
  const environment = stringSetting(settings.data, 'environment');
  const agent = `projects/${encodeURIComponent(projectId)}/locations/${location}/agents/${encodeURIComponent(agentId)}`;
  const session = environment
    ? `${agent}/environments/${encodeURIComponent(environment)}/sessions/${sessionId}`
    : `${agent}/sessions/${sessionId}`;
  return `${dialogflowEndpoint(settings.data, location)}/v3/${session}:detectIntent`;
}

export const dialogflowCx: NluProvider = async (request, settings, ctx) => {
  const url = detectIntentUrl(settings, dialogflowSessionId(request.sessionId));
  const handoffIntents = handoffIntentsOf(settings.data, PROVIDER);
  const key = serviceAccountOf(settings.secret, PROVIDER);
  const body = {
    queryInput: {
      text: { text: clip(request.text, DIALOGFLOW_TEXT_LIMIT) },
      languageCode: stringSetting(settings.data, 'languageCode') ?? request.languageCode,
    },
    ...(settings.data.sentiment === true
      ? { queryParams: { analyzeQueryTextSentiment: true } }
      : {}),
  };
  const response = await googleApiRequest(
    ctx,
    PROVIDER,
    { key, tokenUrl: tokenUrlOf(settings, key) },
    url,
    body,
  );
  const result = parseAnswer(CxAnswer, response.body, PROVIDER).queryResult;
  const match = result.match;
  const name =
    match && !NO_INTENT.has(match.matchType ?? '') ? match.intent?.displayName : undefined;
  const messages = result.responseMessages ?? [];
  const liveAgent = messages.find(message => message.liveAgentHandoff)?.liveAgentHandoff;
  const metadata =
    liveAgent?.metadata === undefined ? '' : JSON.stringify(liveAgent.metadata).slice(0, 200);
  return {
    // proto3 JSON leaves a zero out: a matched intent without a score is taken as certain.
    intent: name ? { name, confidence: match?.confidence ?? 1 } : undefined,
    entities: parameterEntities(match ? match.parameters : result.parameters, request.text),
    sentiment: result.sentimentAnalysisResult
      ? sentimentOf(result.sentimentAnalysisResult.score ?? 0)
      : undefined,
    replies: messages.flatMap(message => message.text?.text ?? []).filter(t => t.trim() !== ''),
    handoff: liveAgent
      ? {
          detail: `Dialogflow CX asked for a live agent${metadata && metadata !== '{}' ? ` (metadata ${metadata})` : ''}`,
        }
      : name && handoffIntents.has(name)
        ? { detail: `Dialogflow CX matched ${name}, a handoff intent (data.handoffIntents)` }
        : undefined,
    provider: PROVIDER,
  };
};

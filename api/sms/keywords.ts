/**
 * SMS keywords on inbound texts: STOP / START / HELP under the tenant's keyword tables (service
 * `SmsKeywords`, else the defaults of domain/opt-out.ts). An opt-out or opt-in keyword changes
 * the consent ledger; HELP is answered at once, in the conversation, with the tenant's help text.
 * The SMS intake (api/sms/intake.ts) calls these inside the transaction that stores the text.
 */
import { randomUUID } from 'node:crypto';
import type { CommonQueryMethods } from 'slonik';
import { insertMessage } from '../../db/conversation.js';
import { changeConsent, markSmsAccepted } from '../../db/queries/sms.js';
import { findService } from '../../db/queries/services.js';
import {
  DEFAULT_HELP_TEXT,
  keywordAction,
  tenantKeywordTables,
  type KeywordAction,
} from '../../domain/opt-out.js';
import { smsSegments } from '../../domain/sms-segments.js';
import { outboundSmsQueue } from '../../queues/outbound-sms.js';
import { recordWork, type EnqueueContext, type WorkRecord } from '../../queues/work.js';

/** The `SmsKeywords` service's data, as the service catalogue accepts it. */
interface KeywordSettings {
  languages?: Record<string, { optOut?: string[]; optIn?: string[]; help?: string[] }>;
  helpText?: string;
}

/** What an inbound text asks for under its tenant's keywords. */
export interface KeywordMatch {
  /** The keyword's action, when the whole text is one. */
  readonly action: KeywordAction | undefined;
  /** The answer to HELP: the tenant's help text, else the default. */
  readonly helpText: string;
}

/** Matches `text` against the tenant's keyword tables (the defaults where it configured none). */
export async function matchKeyword(
  db: CommonQueryMethods,
  tenantId: string,
  text: string,
): Promise<KeywordMatch> {
  const settings = (await findService(db, tenantId, 'SmsKeywords'))?.data as
    KeywordSettings | undefined;
  return {
    action: keywordAction(text, tenantKeywordTables(settings?.languages)),
    helpText: settings?.helpText ?? DEFAULT_HELP_TEXT,
  };
}

/**
 * Records an opt-out or opt-in keyword in the consent ledger of `sender` (the channel number)
 * and `address` (the customer); any other text changes nothing.
 */
export async function recordKeywordConsent(
  tx: CommonQueryMethods,
  match: KeywordMatch,
  text: { tenantId: string; sender: string; address: string; text: string },
): Promise<void> {
  if (match.action !== 'opt-out' && match.action !== 'opt-in') return;
  await changeConsent(tx, {
    tenantId: text.tenantId,
    sender: text.sender,
    address: text.address,
    action: match.action,
    source: 'keyword',
    keyword: text.text.trim().slice(0, 32),
  });
}

/**
 * Answers HELP in the conversation: a system message with the help text, accepted for sending,
 * and its `outbound-sms` work. `externalId` (the inbound text's) keys the answer, so a retried
 * HELP is answered once. Dispatch the returned work after the transaction commits.
 */
export async function recordHelpReply(
  tx: CommonQueryMethods,
  enqueue: EnqueueContext,
  help: { tenantId: string; interactionId: string; externalId: string; text: string },
): Promise<WorkRecord> {
  const message = await insertMessage(tx, {
    id: randomUUID(),
    tenantId: help.tenantId,
    interactionId: help.interactionId,
    direction: 'outbound',
    senderType: 'system',
    senderId: 'system',
    text: help.text,
    clientMessageId: `help:${help.externalId}`,
  });
  await markSmsAccepted(tx, message.id, smsSegments(help.text));
  return recordWork(
    tx,
    outboundSmsQueue,
    { tenantId: help.tenantId, messageId: message.id },
    enqueue,
  );
}

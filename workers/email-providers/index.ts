import { sendAsyncEmail } from './async.js';
import { sendPorticoEmail } from './portico.js';
import type { EmailProvider } from './provider.js';
import { sendSparkPost } from './sparkpost.js';

/**
 * The email providers that speak HTTP, by the `Email` service's (or the channel's) provider
 * name. `SMTP` is not here: its pools live with the processor (processors/outbound-email.ts).
 */
export const EMAIL_PROVIDERS: Readonly<Record<string, EmailProvider>> = {
  SparkPost: sendSparkPost,
  Async: sendAsyncEmail,
  Portico: sendPorticoEmail,
};

/** The service that holds each provider's settings (its `data.maxPerSecond` among them). */
export const EMAIL_PROVIDER_SERVICE: Readonly<Record<string, string>> = {
  SMTP: 'SmtpEmail',
  SparkPost: 'SparkPostEmail',
  Async: 'Async',
  Portico: 'PorticoEmail',
};

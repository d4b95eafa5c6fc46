import { createHmac } from 'node:crypto';
import request from 'supertest';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createOutboundEmailProcessor } from '../../workers/processors/outbound-email.js';
import { createAgent } from './chat.js';
import type { Harness } from './harness.js';
import type { SmtpSink } from './smtp-sink.js';
import { putService, setupTenant } from './tenant-services.js';

/**
 * An email desk for the agent-side email tests: a tenant sending through SMTP to a sink, taking
 * inbound mail from its Async gateway, with one email domain served by a queue of one agent
 * (Erin), and the inbound and outbound-email workers running.
 */

export const EMAIL_TENANT = 'mail-tenant';
export const EMAIL_DOMAIN = 'help.example.com';
const API_SECRET = 'gateway-api-secret';

type App = Harness['app'] extends () => infer A ? A : never;

export async function setupEmailDesk(harness: Harness, sink: SmtpSink) {
  const { app, admin } = await setupTenant(harness, EMAIL_TENANT);
  await putService(app, admin, EMAIL_TENANT, 'Email', {
    url: 'N/A',
    data: { provider: 'SMTP' },
  }).expect(201);
  await putService(app, admin, EMAIL_TENANT, 'SmtpEmail', {
    url: `smtp://127.0.0.1:${sink.port}`,
  }).expect(201);
  await putService(app, admin, EMAIL_TENANT, 'Async', {
    data: {
      channels: [{ channelId: EMAIL_DOMAIN, webhook: { url: 'https://gateway.example/hook' } }],
    },
    secret: {
      channels: [
        {
          channelId: EMAIL_DOMAIN,
          webhook: { secret: 'hook-secret' },
          api: { secret: API_SECRET },
        },
      ],
    },
  }).expect(201);
  await request(app)
    .put(`/nexus/v3/provisioning/endpoints/${EMAIL_TENANT}/EmailDesk`)
    .set(admin)
    .send({})
    .expect(201);
  const agent = await createAgent(harness, app, EMAIL_TENANT, 'erin', 'Erin');
  await request(app)
    .put(`/nexus/v3/provisioning/queues/${EMAIL_TENANT}/Mail`)
    .set(admin)
    .send({ endpoints: ['EmailDesk'], agents: [agent.id] })
    .expect(201);
  await request(app)
    .put(`/nexus/v3/provisioning/channels/${EMAIL_TENANT}/cxc.Support`)
    .set(admin)
    .send({ channelId: EMAIL_DOMAIN, channelType: 'email', endpoint: 'EmailDesk' })
    .expect(201);
  await harness.startWorkers({
    processors: {
      inbound: createInboundProcessor({
        db: harness.db,
        publisher: harness.publisher,
        queues: harness.queues,
        log: harness.log,
      }),
      'outbound-email': createOutboundEmailProcessor({
        db: harness.db,
        log: harness.log,
        bus: harness.bus,
        config: harness.config,
        redis: harness.redis,
      }),
    },
    select: ['inbound', 'outbound-email', 'maintenance'],
  });
  return { app, admin, agent, asAgent: { Authorization: `Bearer ${agent.token}` } };
}

/** Posts mails as the tenant's gateway does: signed with the channel's api secret. */
export function gatewayMail(app: App | string, body: object) {
  const raw = JSON.stringify(body);
  return request(app)
    .post(`/nexus/v3/channels/${EMAIL_DOMAIN}/emails`)
    .set('x-ccid', EMAIL_TENANT)
    .set('Content-Type', 'application/json')
    .set('X-Hub-Signature', `sha1=${createHmac('sha1', API_SECRET).update(raw).digest('hex')}`)
    .send(raw);
}

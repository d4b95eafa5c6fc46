import { bootCore } from './bootstrap.js';
import { serveApi } from './serve-api.js';

/** `npm run api`: the HTTP API alone. */
const core = await bootCore('api');
await serveApi(core);
core.shutdown.add('connections', () => core.close());

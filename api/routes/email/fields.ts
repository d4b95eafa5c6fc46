/** The email request fields the email routes share (api/email/fields.ts, also the agent API's). */
export { emailAddress, headerText, namedAddress } from '../../email/fields.js';

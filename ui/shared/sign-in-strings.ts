/** Every text of the agent sign-in form (/auth/ and the agent pages), in one place to translate. */
export const strings = {
  title: 'Sign in',
  looking: 'Signing in…',
  heading: 'Agent sign-in',
  ccid: 'Contact center (tenant) id',
  username: 'Username',
  password: 'Password',
  submit: 'Sign in',
  working: 'Signing in…',
  invalid: 'The tenant, username or password is not right.',
  throttled: 'Too many attempts: wait a few minutes, then try again.',
  unreachable: 'The hub cannot be reached.',
  other: (message: string) => `Sign-in failed: ${message}`,
};

/**
 * What the hub accepts as an email address and as a header value, at intake (the API answers
 * 400) and again when a mail is built (the worker refuses it): addresses are `local@domain`
 * without spaces, brackets or line breaks (the provider checks deliverability), and no header
 * value may hold CR, LF or NUL (header injection).
 */
export const EMAIL_ADDRESS =
  /^[^\s\0@<>()[\]",;:\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

export const LINE_BREAK = /[\r\n\0]/;

/** The domain of an address, lowercased. */
export const domainOf = (address: string): string =>
  address.slice(address.lastIndexOf('@') + 1).toLowerCase();

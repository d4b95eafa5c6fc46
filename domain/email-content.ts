import { convert } from 'html-to-text';
import sanitize from 'sanitize-html';

/**
 * What of an inbound mail's content the hub keeps and shows: HTML sanitised before any agent
 * sees it (sanitize-html: no scripts, styles, forms, frames, event handlers or `javascript:`
 * links; remote images kept as links only, so opening a mail does not tell the sender), a plain
 * text for the transcript (the text part, else the HTML as text), and attachments limited to an
 * allow-list of content types and a size cap.
 */

const HTML_OPTIONS: sanitize.IOptions = {
  allowedTags: [
    ...sanitize.defaults.allowedTags.filter(tag => tag !== 'img'),
    'span',
    'font',
    'center',
  ],
  allowedAttributes: {
    a: ['href', 'title', 'target', 'rel'],
    td: ['colspan', 'rowspan', 'align', 'valign'],
    th: ['colspan', 'rowspan', 'align', 'valign'],
    '*': ['dir', 'lang'],
  },
  allowedSchemes: ['http', 'https', 'mailto', 'tel'],
  // Links open outside the agent's page, without telling the target where they came from.
  transformTags: {
    a: sanitize.simpleTransform('a', { target: '_blank', rel: 'noopener noreferrer nofollow' }),
  },
  disallowedTagsMode: 'discard',
};

export function sanitizeEmailHtml(html: string): string {
  return sanitize(html, HTML_OPTIONS);
}

/** The mail's text for the transcript: its text part, else its HTML as text. */
export function transcriptText(text: string | undefined, html: string | undefined): string {
  if (text?.trim()) return text.trim();
  if (html) return convert(html, { wordwrap: false }).trim();
  return '';
}

/** Content types an inbound attachment may have (others are not kept; the transcript says so). */
export const ATTACHMENT_TYPES: readonly RegExp[] = [
  /^image\/(png|jpeg|gif|webp|heic|heif)$/,
  /^application\/pdf$/,
  /^text\/(plain|csv|calendar)$/,
  /^application\/vnd\.openxmlformats-officedocument\.(wordprocessingml\.document|spreadsheetml\.sheet|presentationml\.presentation)$/,
  /^application\/(msword|vnd\.ms-excel|vnd\.oasis\.opendocument\.(text|spreadsheet))$/,
  /^audio\/(mpeg|ogg|mp4)$/,
  /^video\/mp4$/,
];

export function attachmentAllowed(contentType: string): boolean {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  return ATTACHMENT_TYPES.some(pattern => pattern.test(type));
}

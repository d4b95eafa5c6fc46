import { describe, expect, it } from 'vitest';
import { attachmentAllowed, sanitizeEmailHtml, transcriptText } from './email-content.js';

describe('sanitizeEmailHtml', () => {
  it('drops scripts, handlers, styles, forms, frames, images and javascript: links', () => {
    const html = sanitizeEmailHtml(
      '<p onclick="steal()">Hi <b>there</b></p><script>alert(1)</script><style>p{}</style>' +
        '<img src="https://track.example/p.gif"><iframe src="https://x.example"></iframe>' +
        '<form action="https://x.example"><input name="a"></form>' +
        '<a href="javascript:alert(1)">x</a><a href="https://ok.example/a">ok</a>',
    );
    expect(html).toBe(
      '<p>Hi <b>there</b></p><a target="_blank" rel="noopener noreferrer nofollow">x</a>' +
        '<a href="https://ok.example/a" target="_blank" rel="noopener noreferrer nofollow">ok</a>',
    );
  });
});

describe('transcriptText', () => {
  it('prefers the text part and falls back on the HTML as text', () => {
    expect(transcriptText(' plain ', '<p>html</p>')).toBe('plain');
    expect(transcriptText(undefined, '<p>Hello</p><p>World</p>')).toBe('Hello\n\nWorld');
    expect(transcriptText(undefined, undefined)).toBe('');
  });
});

describe('attachmentAllowed', () => {
  it('takes documents and images, not executables or HTML', () => {
    expect(attachmentAllowed('application/pdf')).toBe(true);
    expect(attachmentAllowed('image/png; name="a.png"')).toBe(true);
    expect(attachmentAllowed('application/x-msdownload')).toBe(false);
    expect(attachmentAllowed('text/html')).toBe(false);
    expect(attachmentAllowed('image/svg+xml')).toBe(false);
  });
});

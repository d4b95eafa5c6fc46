import { describe, expect, it } from 'vitest';
import { DEFAULT_KEYWORDS, keywordAction } from './opt-out.js';

describe('SMS keywords', () => {
  it('recognises whole-message keywords, whatever the case and trailing punctuation', () => {
    expect(keywordAction('STOP')).toBe('opt-out');
    expect(keywordAction('  stop. ')).toBe('opt-out');
    expect(keywordAction('Unsubscribe!')).toBe('opt-out');
    expect(keywordAction('start')).toBe('opt-in');
    expect(keywordAction('UNSTOP')).toBe('opt-in');
    expect(keywordAction('help?')).toBe('help');
    expect(keywordAction('Arrêt')).toBe('opt-out');
    expect(keywordAction('ayuda')).toBe('help');
  });

  it('ignores keywords inside sentences and empty texts', () => {
    expect(keywordAction('please stop texting me')).toBeUndefined();
    expect(keywordAction('I need help with my order')).toBeUndefined();
    expect(keywordAction('   ')).toBeUndefined();
    expect(keywordAction('stopper')).toBeUndefined();
  });

  it('uses the tables it is given (a tenant’s own keywords)', () => {
    const custom = { 'opt-out': ['NOMORE'], 'opt-in': ['AGAIN'], help: ['WHAT'] };
    expect(keywordAction('nomore', [custom])).toBe('opt-out');
    expect(keywordAction('STOP', [custom])).toBeUndefined();
    expect(keywordAction('stop', [DEFAULT_KEYWORDS.en as typeof custom])).toBe('opt-out');
  });
});

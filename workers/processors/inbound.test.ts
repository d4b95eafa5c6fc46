import { describe, expect, it } from 'vitest';
import { identifiersOf } from './inbound.js';

describe('identifiersOf', () => {
  it("reads a chat's phone as SMS stores it, so both match one contact", () => {
    const session = (phone: string) => ({ email: null, phone, user_data: {} });
    for (const phone of ['+1 (555) 123-4567', ' 15551234567', '15551234567', '+15551234567']) {
      expect(identifiersOf(session(phone)), phone).toEqual([
        { kind: 'phone', value: '+15551234567' },
      ]);
    }
    expect(identifiersOf(session('12345'))).toEqual([{ kind: 'phone', value: '12345' }]);
    // No phone number: it identifies nobody (the session itself was accepted).
    expect(identifiersOf(session('call me'))).toEqual([]);
  });
});

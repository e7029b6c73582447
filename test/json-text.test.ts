import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jsonText } from '../lib/json-text.js';

const ids = jsonText(z.array(z.string().regex(/^EM\d+$/, 'must be an EM id')));

describe('jsonText', () => {
  it.each([
    { name: 'a JSON list', text: '["EM1","EM2"]', expected: ['EM1', 'EM2'] },
    { name: 'an empty list', text: '[]', expected: [] },
    { name: 'whitespace around JSON', text: ' [ "EM1" ] ', expected: ['EM1'] },
  ])('parses $name', ({ text, expected }) => {
    expect(ids.parse(text)).toEqual(expected);
  });

  it.each([
    { name: 'not JSON', text: 'EM1,EM2', message: 'is not valid JSON', path: [] },
    { name: 'empty text', text: '', message: 'is not valid JSON', path: [] },
    { name: 'truncated JSON', text: '["EM1"', message: 'is not valid JSON', path: [] },
    { name: 'JSON of the wrong shape', text: '{"EM1":true}', message: undefined, path: [] },
    { name: 'an item the schema refuses', text: '["EM1","../x"]', message: 'must be an EM id', path: [1] },
  ])('rejects $name, saying what and where', ({ text, message, path }) => {
    const result = ids.safeParse(text);
    expect(result.success).toBe(false);
    const issue = result.error!.issues[0]!;
    if (message !== undefined) expect(issue.message).toBe(message);
    expect(issue.path).toEqual(path);
  });

  it('rejects a value that is not text', () => {
    expect(ids.safeParse(['EM1']).success).toBe(false);
  });
});

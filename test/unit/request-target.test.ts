import { describe, expect, it } from 'vitest';
import { splitTarget } from '../../lambda/adapters/request-target';

describe('splitTarget (shared by the local server and the SigV4 proxy)', () => {
  it.each([
    ['origin-form with a query', '/prod/resolveSession?sessionId=console&transport=HTTP', { path: '/prod/resolveSession', query: 'sessionId=console&transport=HTTP' }],
    ['origin-form without a query', '/health', { path: '/health', query: '' }],
    ['an empty query after ?', '/resolveSession?', { path: '/resolveSession', query: '' }],
    ['absolute-form keeps only path and query', 'http://127.0.0.1:9000/resolveSession?sessionId=a', { path: '/resolveSession', query: 'sessionId=a' }],
    ['asterisk-form becomes /', '*', { path: '/', query: '' }],
    ['no target at all', undefined, { path: '/', query: '' }],
  ])('%s', (_name, target, expected) => {
    expect(splitTarget(target)).toEqual(expected);
  });
});

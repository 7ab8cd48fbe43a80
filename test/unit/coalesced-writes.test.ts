import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../lambda/adapters/coalesced-writes';

function recorder() {
  const writes: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { stream, writes };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('coalesceWrites', () => {
  it('writes the lines of one turn once, in order', async () => {
    const { stream, writes } = recorder();
    const restore = coalesceWrites(stream);
    stream.write('a\n');
    stream.write('b\n');
    stream.write('c\n');
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual(['a\nb\nc\n']);
    stream.write('d\n');
    await nextTurn();
    expect(writes).toEqual(['a\nb\nc\n', 'd\n']);
    restore();
  });

  it('calls every write callback once the coalesced write completes', async () => {
    const { stream } = recorder();
    const restore = coalesceWrites(stream);
    const done: string[] = [];
    stream.write('a\n', () => done.push('a'));
    stream.write('b\n', 'utf8', () => done.push('b'));
    await nextTurn();
    await nextTurn();
    expect(done).toEqual(['a', 'b']);
    restore();
  });

  it('passes Buffers through after what is pending, keeping order', async () => {
    const { stream, writes } = recorder();
    const restore = coalesceWrites(stream);
    stream.write('a\n');
    stream.write(Buffer.from('b\n'));
    stream.write('c\n');
    await nextTurn();
    expect(writes).toEqual(['a\n', 'b\n', 'c\n']);
    restore();
  });

  it('flushes a large turn early, and flushes and restores on demand', async () => {
    const { stream, writes } = recorder();
    const restore = coalesceWrites(stream);
    const big = 'x'.repeat(70 * 1024);
    stream.write(big);
    expect(writes).toEqual([big]);
    stream.write('tail\n');
    restore();
    expect(writes).toEqual([big, 'tail\n']);
    stream.write('direct\n');
    expect(writes.at(-1)).toBe('direct\n');
  });
});

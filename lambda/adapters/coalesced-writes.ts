/**
 * Coalesces the string writes a stream receives within one event-loop turn into a single write.
 *
 * The local server logs one JSON line per request. Under load many requests finish in the same turn,
 * and one write(2) per line costs more than answering the request (a file or pipe write is a
 * synchronous system call on Linux). Order is kept, nothing waits longer than the current turn
 * (setImmediate), a turn's buffer is bounded, and whatever is pending is written on process exit.
 * Returns a function that flushes and puts the stream's own write back.
 */
const MAX_PENDING_CHARS = 64 * 1024;

type WriteCallback = (error?: Error | null) => void;
type AnyWrite = (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;

export function coalesceWrites(stream: NodeJS.WritableStream = process.stdout): () => void {
  const ownWrite = stream.write;
  const original = ownWrite.bind(stream) as AnyWrite;
  let pending: string[] = [];
  let pendingChars = 0;
  let callbacks: WriteCallback[] = [];
  let scheduled = false;

  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const data = pending.length === 1 ? pending[0]! : pending.join('');
    const waiting = callbacks;
    pending = [];
    pendingChars = 0;
    callbacks = [];
    original(data, waiting.length ? (error?: Error | null) => waiting.forEach((cb) => cb(error)) : undefined);
  };

  const write: AnyWrite = (chunk, encoding, callback) => {
    const plainText = typeof chunk === 'string' && (typeof encoding !== 'string' || /^utf-?8$/i.test(encoding));
    if (!plainText) {
      // Buffers and other encodings go through as they are, after what is pending: order never changes.
      flush();
      return original(chunk, encoding, callback);
    }
    const cb = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
    pending.push(chunk);
    pendingChars += chunk.length;
    if (cb) callbacks.push(cb);
    if (pendingChars >= MAX_PENDING_CHARS) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
    return true;
  };

  stream.write = write as typeof stream.write;
  process.on('exit', flush);
  return () => {
    flush();
    stream.write = ownWrite;
    process.off('exit', flush);
  };
}

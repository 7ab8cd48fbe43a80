import type { IncomingMessage } from 'node:http';

/**
 * Collects a request body of at most `maxBytes`. Past that, `onTooLarge` runs once and the rest is
 * read and dropped (so the connection stays usable) instead of being buffered.
 */
export function readBoundedBody(
  req: IncomingMessage,
  maxBytes: number,
  handlers: { onBody(body: Buffer): void; onTooLarge(): void },
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) {
      if (!refused) handlers.onTooLarge();
      refused = true;
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (!refused) handlers.onBody(Buffer.concat(chunks));
  });
}

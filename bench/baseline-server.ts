import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The floor for the throughput benchmark: bare node:http answering the resolver's JSON from a Map.
 * It parses the query and looks the id up, as the resolver must, but validates and logs nothing.
 */
const sessions = new Map([
  ['console', { SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.150.248.180', Port: 8443, WebUrlPath: '/' }],
]);

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const answer = sessions.get(new URLSearchParams(q === -1 ? '' : url.slice(q + 1)).get('sessionId') ?? '');
  const body = answer ? JSON.stringify(answer) : '{"error":"NotFoundError"}';
  res.writeHead(answer ? 200 : 404, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});

server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`baseline: serving on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

// The cold-start floor: the least a fresh process must do before its first answer. Load node:http and
// node:crypto, sign one strongly consistent GetItem with SigV4 by hand, send it, read the item. No
// retries, no timeouts, no validation: nothing a real resolver could do without.
// Env: FLOOR_LOAD (see below), AWS_ENDPOINT_URL_DYNAMODB (http://host:port), TABLE_NAME, AWS_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, BENCH_SESSION (the key to read).
// FLOOR_LOAD=builtin loads the two modules with process.getBuiltinModule instead of ES imports: on Node 22 and 24
// an ES import of node:http builds its namespace, whose WebSocket getters load undici (~45 ms).
const builtin = process.env.FLOOR_LOAD === 'builtin';
const { request } = builtin ? process.getBuiltinModule('node:http') : await import('node:http');
const { createHash, createHmac } = builtin ? process.getBuiltinModule('node:crypto') : await import('node:crypto');

const env = process.env;
const url = new URL(env.AWS_ENDPOINT_URL_DYNAMODB);
const region = env.AWS_REGION;
const body = JSON.stringify({ TableName: env.TABLE_NAME, Key: { SessionId: { S: env.BENCH_SESSION } }, ConsistentRead: true });
const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
const scope = `${amzDate.slice(0, 8)}/${region}/dynamodb/aws4_request`;
const sha = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();
const headers = { 'content-type': 'application/x-amz-json-1.0', host: url.host, 'x-amz-date': amzDate, 'x-amz-target': 'DynamoDB_20120810.GetItem' };
const names = Object.keys(headers).sort().join(';');
const canonical = ['POST', '/', '', ...Object.keys(headers).sort().map((k) => `${k}:${headers[k]}`), '', names, sha(body)].join('\n');
let key = hmac(`AWS4${env.AWS_SECRET_ACCESS_KEY}`, amzDate.slice(0, 8));
for (const part of [region, 'dynamodb', 'aws4_request']) key = hmac(key, part);
const signature = createHmac('sha256', key).update(`AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha(canonical)}`).digest('hex');
headers.authorization = `AWS4-HMAC-SHA256 Credential=${env.AWS_ACCESS_KEY_ID}/${scope}, SignedHeaders=${names}, Signature=${signature}`;
const req = request({ hostname: url.hostname, port: url.port, method: 'POST', path: '/', headers }, (res) => {
  let text = '';
  res.setEncoding('utf8').on('data', (chunk) => (text += chunk)).on('end', () => {
    const item = JSON.parse(text).Item;
    if (res.statusCode !== 200 || item?.SessionId?.S !== env.BENCH_SESSION) { console.error(`floor: ${res.statusCode} ${text}`); process.exit(3); }
    const u = process.cpuUsage();
    process.stderr.write(`cpu=${u.user + u.system}\n`);
    process.exit(0);
  });
});
req.end(body);

/**
 * The cost floor of any proxy hop: forwards requests and responses byte for byte over
 * keep-alive connections, parsing nothing. Given several targets it is a load balancer without
 * stickiness: each request goes to the next target in turn.
 * `node --import tsx bench/byte-proxy.ts TARGET_ORIGIN...` prints `listening http://127.0.0.1:PORT`.
 */
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

const targets = process.argv.slice(2).map((origin) => new URL(origin));
if (targets.length === 0) throw new Error('usage: byte-proxy.ts TARGET_ORIGIN...');
const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
let turn = 0;
const server = createServer((req, res) => {
  const target = targets[turn++ % targets.length]!;
  const upstream = request(
    { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers, agent },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => res.writeHead(502).end());
  req.pipe(upstream);
});
server.keepAliveTimeout = 60_000;
server.on('connection', (socket) => socket.setNoDelay(true));
server.listen(0, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}`));
process.on('SIGTERM', () => process.exit(0));

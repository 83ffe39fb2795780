// The peer for bench/fanout: a plain Node `ws` room-broadcast server. A text
// frame sent on /<room> goes to every socket connected to that path.
// Usage: node bench/peers/ws-broadcast.js PORT
'use strict';
const path = require('node:path');
const { WebSocketServer } = require(path.join(__dirname, '../../tests/e2e/node_modules/ws'));

const rooms = new Map();
const wss = new WebSocketServer({ port: Number(process.argv[2]), host: '127.0.0.1', perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const room = req.url;
  if (!rooms.has(room)) rooms.set(room, new Set());
  const members = rooms.get(room);
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const m of members) m.send(data, { binary: isBinary });
  });
  ws.on('close', () => members.delete(ws));
});

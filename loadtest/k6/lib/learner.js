// One learner's visit: open the app, search, ask (JSON, SSE or WebSocket), click a recommended video,
// report watch progress, view a learning path, fetch the calendar; with think times in between.
import http from 'k6/http';
import ws from 'k6/ws';
import { check, sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Trend, Rate } from 'k6/metrics';
import { nextQuestion, SEARCHES } from './questions.js';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const THINK_SCALE = Number(__ENV.THINK_SCALE || 1); // 1 = reading pauses of 5-20 s between steps
const STREAM_SHARE = Number(__ENV.STREAM_SHARE || 0.1); // share of chats over SSE
const WS_SHARE = Number(__ENV.WS_SHARE || 0.05); // share of chats over WebSocket

export const chatDuration = new Trend('chat_duration', true); // complete answer, plain JSON requests
export const streamDuration = new Trend('chat_stream_duration', true); // complete answer over SSE
export const chatFirstToken = new Trend('chat_time_to_first_token', true); // WebSocket first token
export const cacheHits = new Rate('chat_cache_hit');

function think(minS, maxS) {
  sleep((minS + Math.random() * (maxS - minS)) * THINK_SCALE);
}

function uuid() {
  return 'xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx'.replace(/x/g, () => ((Math.random() * 16) | 0).toString(16));
}

function chatJson(params, question) {
  const res = http.post(`${BASE_URL}/v1/chat`, JSON.stringify({ question }), { ...params, tags: { name: 'chat' } });
  check(res, { 'chat 200': (r) => r.status === 200, 'chat has 3+ videos': (r) => r.status === 200 && r.json('videos').length >= 3 });
  chatDuration.add(res.timings.duration);
  cacheHits.add(res.headers['X-Cache'] !== 'miss');
  return res.status === 200 ? res.json('videos') : [];
}

function chatStream(params, question) {
  const res = http.post(`${BASE_URL}/v1/chat/stream`, JSON.stringify({ question }), { ...params, tags: { name: 'chat_stream' } });
  check(res, { 'stream 200': (r) => r.status === 200, 'stream done': (r) => r.body.includes('event: done') });
  streamDuration.add(res.timings.duration);
  const match = res.body && res.body.match(/event: videos\ndata: (.*)\n/);
  return match ? JSON.parse(match[1]) : [];
}

function chatSocket(key, question) {
  let videos = [];
  const started = Date.now();
  const url = BASE_URL.replace('http', 'ws') + '/v1/chat/ws';
  const res = ws.connect(url, { headers: { Authorization: `Bearer ${key}` }, tags: { name: 'chat_ws' } }, (socket) => {
    let first = true;
    socket.on('open', () => socket.send(JSON.stringify({ question })));
    socket.on('message', (raw) => {
      const frame = JSON.parse(raw);
      if (frame.type === 'token' && first) { chatFirstToken.add(Date.now() - started); first = false; }
      if (frame.type === 'videos') videos = frame.data;
      if (frame.type === 'done' || frame.type === 'error') socket.close();
    });
    socket.setTimeout(() => socket.close(), 30000);
  });
  check(res, { 'ws 101': (r) => r && r.status === 101 });
  return videos;
}

export function visit(key) {
  const params = { headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' } };
  check(http.get(`${BASE_URL}/healthz`, { tags: { name: 'open' } }), { 'open 200': (r) => r.status === 200 });
  think(1, 3);
  const search = http.get(`${BASE_URL}/v1/videos/search?q=${encodeURIComponent(SEARCHES[__ITER % SEARCHES.length])}`,
    { ...params, tags: { name: 'search' } });
  check(search, { 'search 200': (r) => r.status === 200 });
  think(5, 15);
  const question = nextQuestion().text;
  const roll = Math.random();
  const videos = roll < WS_SHARE ? chatSocket(key, question)
    : roll < WS_SHARE + STREAM_SHARE ? chatStream(params, question) : chatJson(params, question);
  think(10, 20);
  if (videos.length > 0) {
    const video = videos[0].id;
    const click = http.post(`${BASE_URL}/v1/progress/events`, JSON.stringify({ event_id: uuid(), video_id: video, kind: 'click' }),
      { ...params, tags: { name: 'progress' } });
    check(click, { 'click 201': (r) => r.status === 201 });
    think(5, 15);
    const watch = http.post(`${BASE_URL}/v1/progress/events`,
      JSON.stringify({ event_id: uuid(), video_id: video, kind: 'progress', position_s: 60 + __ITER }),
      { ...params, tags: { name: 'progress' } });
    check(watch, { 'progress 201': (r) => r.status === 201 });
  }
  think(2, 6);
  check(http.get(`${BASE_URL}/v1/paths`, { ...params, tags: { name: 'paths' } }), { 'paths 200': (r) => r.status === 200 });
  think(2, 6);
  check(http.get(`${BASE_URL}/v1/calendar/sessions`, { ...params, tags: { name: 'calendar' } }),
    { 'calendar 200': (r) => r.status === 200 });
  think(5, 15);
}

// Keys made by the load-test runner (loadtest/loadrun), shared by all VUs without a copy each.
const KEYS_FILE = __ENV.KEYS_FILE;
const FILE_KEYS = KEYS_FILE ? new SharedArray('keys', () => JSON.parse(open(KEYS_FILE))) : null;

// The virtual user's key: from KEYS_FILE, or from setup()'s createUsers.
export function keyFor(data) {
  const keys = FILE_KEYS || data.keys;
  return keys[(__VU - 1) % keys.length];
}

// setup() without KEYS_FILE: one pro-tier user and key per virtual user, created through the admin API.
export function createUsers(count) {
  const admin = { headers: { Authorization: `Bearer ${__ENV.ADMIN_KEY}`, 'Content-Type': 'application/json' } };
  // Unique per run even when load generators start their parts in the same millisecond.
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const keys = [];
  for (let start = 0; start < count; start += 50) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 50); i++) {
      batch.push(['POST', `${BASE_URL}/v1/admin/users`, JSON.stringify({ email: `k6-${run}-${i}@example.com`, tier: 'pro' }), admin]);
    }
    const users = http.batch(batch).map((r) => r.json('id'));
    const created = http.batch(users.map((id) => ['POST', `${BASE_URL}/v1/admin/users/${id}/keys`, JSON.stringify({ name: 'k6' }), admin]));
    created.forEach((r) => keys.push(r.json('key')));
  }
  return keys;
}

export const THRESHOLDS = {
  http_req_failed: ['rate<0.01'],
  http_req_duration: ['p(95)<3000'],
  'http_req_duration{name:chat}': ['p(95)<3000'],
  chat_duration: ['p(95)<3000'],
  chat_stream_duration: ['p(95)<3000'],
  chat_time_to_first_token: ['p(95)<3000'],
  checks: ['rate>0.99'],
};

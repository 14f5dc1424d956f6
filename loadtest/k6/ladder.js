// Ladder: what does each layer of the app cost, in one run on one machine? Four phases one after the
// other at the same concurrency and no think time: cache misses against the fake LLM at FIXED latency
// (the runner sets it), so the app's own overhead on a miss is its p95 minus the stand-in's fixed time;
// a bare endpoint (/healthz); an authenticated chat answered from the exact cache; one answered from the
// semantic cache (paraphrases). Misses go first: after the cached phase has stored ~35,000 chats in 20 s,
// Postgres is still busy with that write burst for a while and misses measured then took ~450 ms more
// at p95, which is not the app's cost of a miss (docs/performance/ladder.md). Each phase is tagged
// `phase`; the runner reads the summary.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { TOPICS, uniqueQuestion } from './lib/questions.js';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const VUS = Number(__ENV.LADDER_VUS || 40);
const PHASE_S = Number(__ENV.LADDER_PHASE_S || 20);
const KEYS = new SharedArray('keys', () => JSON.parse(open(__ENV.KEYS_FILE)));
const PHASES = ['miss', 'bare', 'cached', 'semantic'];  // in this order

export const options = {
  scenarios: Object.fromEntries(PHASES.map((phase, i) => [phase, {
    executor: 'constant-vus', vus: VUS, duration: `${PHASE_S}s`, startTime: `${i * (PHASE_S + 5)}s`,
    exec: phase, tags: { phase } }])),
  thresholds: Object.fromEntries(PHASES.flatMap((phase) => [
    [`http_req_duration{phase:${phase}}`, ['p(95)<60000']], [`http_reqs{phase:${phase}}`, ['count>0']]])),
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
  // The checks read status and headers only: k6 on the same two cores should spend nothing on bodies.
  discardResponseBodies: true,
};

// The load generator shares the two cores with the app, so what it can build once it builds once: each
// client's request parameters and the cached phases' bodies (the phases measure the app, not k6).
let params = null;
const CHAT_URL = `${BASE_URL}/v1/chat`;
const CACHED_BODY = JSON.stringify({ question: TOPICS[0][0] });
const SEMANTIC_BODIES = TOPICS.map((topic) => JSON.stringify({ question: topic[1] }));

function chat(body, phase) {
  params = params || { headers: { Authorization: `Bearer ${KEYS[(__VU - 1) % KEYS.length]}`,
    'Content-Type': 'application/json' }, tags: { name: 'chat' } };
  const res = http.post(CHAT_URL, body, params);
  check(res, { [`${phase} 200`]: (r) => r.status === 200,
    [`${phase} cache ${phase === 'miss' ? 'miss' : 'hit'}`]: (r) => (r.headers['X-Cache'] === 'miss') === (phase === 'miss') });
}

export function bare() {
  check(http.get(`${BASE_URL}/healthz`), { 'bare 200': (r) => r.status === 200 });
}

export function cached() {
  chat(CACHED_BODY, 'cached');
}

export function semantic() {
  chat(SEMANTIC_BODIES[__ITER % TOPICS.length], 'semantic');
}

// A miss takes ~2 s, so 40 clients starting at the same instant would send 40 misses in one burst
// (40 embeddings, searches and streams at once on two cores) and every later wave ~2 s apart: the p95
// would measure that queue, not the app's overhead. Each client starts at a random point of one miss's
// duration, so misses arrive spread out, as independent learners' do (bursts are the spike scenario's).
const MISS_STAGGER_S = 2;

export function miss() {
  if (__ITER === 0) sleep(Math.random() * MISS_STAGGER_S);
  chat(JSON.stringify({ question: uniqueQuestion() + ` ${__VU}-${__ITER}` }), 'miss');
}

// Canary: steady traffic through the release proxy while a candidate takes a share of it. Which
// requests failed, and when, is read from k6's CSV output (`--out csv=`) by the release drill.
import exec from 'k6/execution';
import http from 'k6/http';

const BASE = __ENV.BASE_URL;
const PARAMS = { headers: { Authorization: `Bearer ${__ENV.KEY}`, 'Content-Type': 'application/json' },
                 timeout: '20s' };
const SEARCHES = ['roblox door script', 'python loops', 'blender donut', 'unity jump', 'css grid'];

export const options = {
  scenarios: { traffic: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE || 25), timeUnit: '1s',
                          duration: __ENV.DURATION || '60s', preAllocatedVUs: 20, maxVUs: 200 } },
};

export default function () {
  // The three endpoints in turn, so a third of the traffic searches in every run, not a third on average.
  const n = exec.scenario.iterationInTest % 3;
  if (n === 0) {
    http.get(`${BASE}/v1/videos/search?q=${encodeURIComponent(SEARCHES[Math.floor(Math.random() * 5)])}`, PARAMS);
  } else if (n === 1) {
    http.post(`${BASE}/v1/chat`, JSON.stringify({ question: 'How do I script a door that opens in Roblox?' }), PARAMS);
  } else {
    http.get(`${BASE}/v1/me`, PARAMS);
  }
}

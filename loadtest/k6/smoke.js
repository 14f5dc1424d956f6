// Smoke: does the whole learner journey still work end to end under a little load? (A few hundred
// users for about a minute; runs in the default test suite so the scenario never rots.)
import { visit, createUsers, keyFor, THRESHOLDS } from './lib/learner.js';

const USERS = Number(__ENV.USERS || 200);
// ITERATIONS: a fixed amount of work instead (each user visits that many times), so runs split into
// execution segments across load generators can be counted against one run on one host.
const ITERATIONS = Number(__ENV.ITERATIONS || 0);
export const options = {
  setupTimeout: '120s',
  scenarios: { learners: ITERATIONS
    ? { executor: 'per-vu-iterations', vus: USERS, iterations: ITERATIONS, maxDuration: '5m' }
    : { executor: 'ramping-vus', startVUs: 0, stages: [
      { duration: __ENV.RAMP || '15s', target: USERS }, { duration: __ENV.HOLD || '40s', target: USERS }] } },
  thresholds: THRESHOLDS,
};

export function setup() {
  const res = createUsers(USERS);
  return { keys: res };
}

export default function (data) {
  visit(keyFor(data));
}

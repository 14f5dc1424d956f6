// Smoke: does the whole learner journey still work end to end under a little load? (A few hundred
// users for about a minute; runs in the default test suite so the scenario never rots.)
import { visit, createUsers, keyFor, THRESHOLDS } from './lib/learner.js';

const USERS = Number(__ENV.USERS || 200);
export const options = {
  setupTimeout: '120s',
  scenarios: { learners: { executor: 'ramping-vus', startVUs: 0, stages: [
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

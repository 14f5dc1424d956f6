// Load: do 10,000 concurrent learners get chat answers with p95 < 3 s, under 1 % failures?
// USERS (default 10000) ramp up over RAMP, then HOLD at peak. Think times are a learner's reading
// pauses (5-20 s between steps); see loadtest/README.md for the full model.
import { visit, createUsers, keyFor, THRESHOLDS } from './lib/learner.js';

const USERS = Number(__ENV.USERS || 10000);
export const options = {
  setupTimeout: '900s',
  scenarios: { learners: { executor: 'ramping-vus', startVUs: 0, gracefulRampDown: '30s', stages: [
    { duration: __ENV.RAMP || '5m', target: USERS }, { duration: __ENV.HOLD || '10m', target: USERS }] } },
  thresholds: THRESHOLDS,
};

export function setup() {
  return __ENV.KEYS_FILE ? {} : { keys: createUsers(USERS) };
}

export default function (data) {
  visit(keyFor(data));
}

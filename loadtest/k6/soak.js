// Soak: at a steady load for a long time (DURATION, default 30m), does memory stay flat and latency hold?
import { visit, createUsers, keyFor, THRESHOLDS } from './lib/learner.js';

const USERS = Number(__ENV.USERS || 1000);
export const options = {
  setupTimeout: '600s',
  scenarios: { learners: { executor: 'constant-vus', vus: USERS, duration: __ENV.DURATION || '30m' } },
  thresholds: THRESHOLDS,
};

export function setup() {
  return __ENV.KEYS_FILE ? {} : { keys: createUsers(USERS) };
}

export default function (data) {
  visit(keyFor(data));
}

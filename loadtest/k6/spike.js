// Spike: when learners arrive all at once (x5 in 30 s), do we keep answering and recover?
import { visit, createUsers, keyFor, THRESHOLDS } from './lib/learner.js';

const USERS = Number(__ENV.USERS || 2000);
export const options = {
  setupTimeout: '600s',
  scenarios: { learners: { executor: 'ramping-vus', startVUs: 0, stages: [
    { duration: '1m', target: USERS / 5 }, { duration: '30s', target: USERS }, { duration: '2m', target: USERS },
    { duration: '30s', target: USERS / 5 }, { duration: '2m', target: USERS / 5 }] } },
  thresholds: THRESHOLDS,
};

export function setup() {
  return __ENV.KEYS_FILE ? {} : { keys: createUsers(USERS) };
}

export default function (data) {
  visit(keyFor(data));
}

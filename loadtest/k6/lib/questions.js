// The chat mix: popular questions drawn from a Zipf-like distribution (s = 1.1), some asked in other
// words (paraphrases, for the semantic cache) and some unique. Shares are env-configurable and stated
// in the report: UNIQUE_SHARE (default 0.15) and PARAPHRASE_SHARE (default 0.15).
// Popular questions with one paraphrase each; the load-test runner warms the cache with them.
export const TOPICS = JSON.parse(open('./topics.json')).map((t) => [t.question, t.paraphrase]);
const UNIQUE_SHARE = Number(__ENV.UNIQUE_SHARE || 0.15);
const PARAPHRASE_SHARE = Number(__ENV.PARAPHRASE_SHARE || 0.15);
const S = 1.1;
const WEIGHTS = TOPICS.map((_, i) => 1 / Math.pow(i + 1, S));
const TOTAL = WEIGHTS.reduce((a, b) => a + b, 0);

function zipfIndex() {
  let r = Math.random() * TOTAL;
  for (let i = 0; i < WEIGHTS.length; i++) {
    r -= WEIGHTS[i];
    if (r <= 0) return i;
  }
  return WEIGHTS.length - 1;
}

// Unique questions are new in meaning, not a popular question with noise appended (that would be a
// semantic-cache hit and flatter the hit rate): three random subjects from a wide vocabulary.
const SUBJECTS = ['shaders', 'particles', 'inventory', 'pathfinding', 'multiplayer', 'saving', 'audio',
  'animation', 'physics', 'lighting', 'terrain', 'dialogue', 'quests', 'crafting', 'weather', 'cameras',
  'menus', 'achievements', 'localisation', 'procedural dungeons', 'cutscenes', 'ragdolls', 'vehicles',
  'water', 'fog', 'minimaps', 'skill trees', 'economy', 'matchmaking', 'replays', 'mods', 'controllers',
  'touch input', 'accessibility', 'profiling', 'memory leaks', 'unit tests', 'version control', 'sprites',
  'tilemaps', 'voxels', 'day night cycles', 'stealth', 'boss fights', 'loot tables', 'chat filters'];

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

export function uniqueQuestion() {
  return `How would I combine ${pick(SUBJECTS)} with ${pick(SUBJECTS)} and ${pick(SUBJECTS)} in my game?`;
}

export function nextQuestion() {
  const roll = Math.random();
  const [popular, paraphrase] = TOPICS[zipfIndex()];
  if (roll < UNIQUE_SHARE) return { kind: 'unique', text: uniqueQuestion() };
  if (roll < UNIQUE_SHARE + PARAPHRASE_SHARE) return { kind: 'paraphrase', text: paraphrase };
  return { kind: 'popular', text: popular };
}

export const SEARCHES = ['roblox scripting', 'unity c#', 'godot signals', 'python lists', 'blender rig',
  'lua tables', 'game design level', 'javascript canvas'];

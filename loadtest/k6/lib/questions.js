// The chat mix: popular questions drawn from a Zipf-like distribution (s = 1.1), some asked in other
// words (paraphrases, for the semantic cache) and some unique. Shares are env-configurable and stated
// in the report: UNIQUE_SHARE (default 0.15) and PARAPHRASE_SHARE (default 0.15).
const TOPICS = [
  ['How do I script a door that opens in Roblox?', 'roblox studio: making a door open with a script'],
  ['How do I make a leaderboard in Roblox?', 'how can i make a leaderboard in roblox studio'],
  ['How do I save player data with DataStores?', 'how to save the players data using datastores in roblox'],
  ['How do I use RemoteEvents in Roblox?', 'how can I use remote events in roblox studio'],
  ['How do I make an obby in Roblox?', 'how to build an obby in roblox'],
  ['How do I use TweenService?', 'how to tween parts with tweenservice in roblox'],
  ['How do I move a player with C# in Unity?', 'unity c#: how can I move my player'],
  ['How do I make a 2D platformer in Unity?', 'how to create a 2d platformer game in unity'],
  ['How do I make a main menu in Unity?', 'how to build a main menu in unity'],
  ['How do I use signals in Godot?', 'how can I use godot signals'],
  ['How do I write GDScript?', 'how to code in gdscript for godot'],
  ['How do I use lists and dictionaries in Python?', 'python: how to use lists and dicts'],
  ['How do I make a game with pygame?', 'how can I build a game using pygame'],
  ['How do I understand closures in JavaScript?', 'javascript closures explained for beginners'],
  ['How do I model a low-poly tree in Blender?', 'how to make a low poly tree in blender'],
  ['How do I rig a character in Blender?', 'how can I rig my character in blender'],
  ['How do I design a fun first level?', 'how to design a good first level for my game'],
  ['How do I use tables in Lua?', 'lua tables: how do they work'],
  ['How do I handle errors with pcall in Lua?', 'how to use pcall for error handling in lua'],
  ['How do I make enemy AI with NavMesh in Unity?', 'unity navmesh enemy ai tutorial'],
];
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

export function nextQuestion() {
  const roll = Math.random();
  const [popular, paraphrase] = TOPICS[zipfIndex()];
  if (roll < UNIQUE_SHARE) {
    return { kind: 'unique', text: `${popular} (learner ${__VU} attempt ${__ITER} ${Math.random().toString(36).slice(2, 8)})` };
  }
  if (roll < UNIQUE_SHARE + PARAPHRASE_SHARE) return { kind: 'paraphrase', text: paraphrase };
  return { kind: 'popular', text: popular };
}

export const SEARCHES = ['roblox scripting', 'unity c#', 'godot signals', 'python lists', 'blender rig',
  'lua tables', 'game design level', 'javascript canvas'];

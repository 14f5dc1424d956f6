-- wrk script: streamed chat completions with usage, as the app asks for them (see ../README.md).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer fake-key"
wrk.path = "/v1/chat/completions"
wrk.body = [[{"model": "gpt-4o-mini", "max_tokens": 150, "stream": true, "stream_options": {"include_usage": true},
  "messages": [
  {"role": "system", "content": "You are Chat Wizard, a friendly tutor for learners of game development."},
  {"role": "user", "content": "<videos>\n- Make a donut in Blender (channel: Blender Guru, 20 min)\n- Unity in 100 seconds (channel: Fireship, 2 min)\n- Godot movement basics (channel: GDQuest, 12 min)\n</videos>\n<question>How do I make my first 3D game?</question>"}]}]]

function response(status, headers, body)
  if status ~= 200 then error("unexpected status " .. status) end
end

-- wrk script: one-question embeddings, as the app sends per chat (see ../README.md).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer fake-key"
wrk.path = "/v1/embeddings"
wrk.body = [[{"model": "text-embedding-3-small", "dimensions": 384, "encoding_format": "base64",
  "input": "how do I make my first 3D game in Unity"}]]

function response(status, headers, body)
  if status ~= 200 then error("unexpected status " .. status) end
end

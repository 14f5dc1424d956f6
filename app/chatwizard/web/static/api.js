// The /v1 JSON API with the session cookie; state-changing requests carry the session's CSRF token.
let csrfToken = null;

export class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export function useSession(session) {
  csrfToken = session ? session.csrf_token : null;
}

function headers(method, hasBody) {
  const out = { Accept: "application/json" };
  if (hasBody) out["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) out["X-CSRF-Token"] = csrfToken;
  return out;
}

async function problem(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not a problem document (a proxy's error page): the status says enough
  }
  const retryAfter = Number(response.headers.get("Retry-After") ?? body.retry_after) || null;
  return new ApiError(response.status, body.detail || response.statusText, retryAfter);
}

async function send(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method, credentials: "same-origin", headers: headers(method, body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "Chat Wizard could not be reached. Check your connection and try again.", null);
  }
  if (!response.ok) throw await problem(response);
  return response;
}

export async function api(method, path, body) {
  const response = await send(method, path, body);
  return response.status === 204 ? null : response.json();
}

export async function download(path, filename) {
  const blob = await (await send("GET", path)).blob();
  const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// Server-sent events from a POST (EventSource can only GET): yields {event, data} as they arrive.
export async function* stream(path, body) {
  const response = await send("POST", path, body);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      yield { event, data: JSON.parse(data) };
    }
  }
}

function waitText(seconds) {
  if (!seconds) return "a little while";
  if (seconds < 90) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  return `${Math.ceil(seconds / 60)} minutes`;
}

// What to tell people about a failed request: the API's own detail, or when to try again.
export function describe(error) {
  if (!(error instanceof ApiError)) return "Something went wrong. Reload the page and try again.";
  if (error.status === 429) return `You have made too many requests. Try again in ${waitText(error.retryAfter)}.`;
  if (error.status === 503) return `Chat Wizard is busy right now. Try again in ${waitText(error.retryAfter)}.`;
  return error.message;
}

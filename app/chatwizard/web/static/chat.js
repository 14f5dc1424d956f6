// Asking: the answer streams in from POST /v1/chat/stream, then the recommended videos.
import { api, stream } from "./api.js";
import { announce, h, minutes, screen, when } from "./dom.js";

// Progress events are idempotent by their id: a retried click is not counted twice.
export function record(videoId, kind) {
  return api("POST", "/v1/progress/events", { event_id: crypto.randomUUID(), video_id: videoId, kind });
}

export function watchedButton(videoId, title, ctx, alert, onDone) {
  const button = h("button", { type: "button", class: "secondary", "aria-label": `Mark "${title}" watched` },
    "Mark watched");
  button.addEventListener("click", async () => {
    try {
      await record(videoId, "complete");
      const done = h("span", { class: "done", tabindex: "-1", "data-video": videoId }, "Watched");
      button.replaceWith(done);
      done.focus(); // keyboard focus stays where the button was
      announce(`Marked "${title}" watched.`);
      onDone?.();
    } catch (error) {
      ctx.fail(alert, error);
    }
  });
  return button;
}

function videoCard(video, ctx, alert) {
  const open = () => record(video.id, "click").catch(() => {}); // counting a click must not block opening
  return h("li", { class: "video" },
    video.thumbnail_url
      ? h("img", { src: video.thumbnail_url, alt: "", loading: "lazy", width: "160", height: "90" }) : null,
    h("div", {},
      h("p", { class: "video-title" },
        h("a", { href: video.url, target: "_blank", rel: "noopener noreferrer", onclick: open },
          video.title, h("span", { class: "visually-hidden" }, " (opens YouTube in a new tab)"))),
      h("p", { class: "meta" }, `${video.channel} · ${minutes(video.duration_s)}`),
      h("p", { class: "reason" }, video.reason),
      watchedButton(video.id, video.title, ctx, alert)));
}

function videoList(videos, ctx, alert) {
  return h("ul", { class: "videos", "aria-label": "Recommended videos" }, videos.map((v) => videoCard(v, ctx, alert)));
}

// Who wrote the answer is always said (docs/user-guide.md).
const SOURCES = {
  openai: "Written by a language model from the videos below.",
  local: "Composed from the catalogue: no language model is set up.",
  fallback: "The language model was unavailable just now; the videos are still the right ones.",
};

function source(kind, saved = true) {
  return h("p", { class: "meta source" }, SOURCES[kind] ?? "", saved ? "" : " Not saved in your history.");
}

function question(text) {
  return h("li", { class: "question" }, h("p", { class: "who" }, "You asked"), h("p", {}, text));
}

function answer(message, ctx, alert) {
  return h("li", { class: "answer" }, h("p", { class: "who" }, "Chat Wizard"),
    h("p", { class: "answer-text" }, message.content), source(message.answer_source),
    message.videos.length ? videoList(message.videos, ctx, alert) : null);
}

async function ask(text, state, ctx, alert, transcript) {
  const live = h("p", { class: "answer-text", "aria-live": "polite", "aria-busy": "true" });
  const item = h("li", { class: "answer" }, h("p", { class: "who" }, "Chat Wizard"), live);
  transcript.append(question(text), item);
  for await (const { event, data } of stream("/v1/chat/stream", { question: text, conversation_id: state.id })) {
    if (event === "token") live.append(data.text);
    else if (event === "videos") item.append(videoList(data, ctx, alert));
    else if (event === "done") {
      live.after(source(data.answer_source, data.saved));
      if (data.conversation_id) {
        state.id = data.conversation_id;
        history.replaceState(null, "", `/chat?conversation=${state.id}`);
      }
    }
  }
  live.setAttribute("aria-busy", "false");
  announce("The answer is complete.");
}

export async function chat(main, ctx) {
  const state = { id: ctx.params.get("conversation") };
  const transcript = h("ol", { class: "transcript", "aria-label": "Conversation" });
  const input = h("textarea", { id: "question", name: "question", rows: "3", maxlength: "2000", required: true });
  const button = h("button", { type: "submit" }, "Ask");
  const form = h("form", { class: "ask" },
    h("label", { for: "question" }, "Your question"), input, button);
  const alert = screen(main, state.id ? "Continue your conversation" : "Ask Chat Wizard",
    h("p", { class: "lead" }, "Ask how to do something and get a short answer with videos to learn from."),
    transcript, form);
  if (state.id) {
    const conversation = await api("GET", `/v1/conversations/${encodeURIComponent(state.id)}`);
    for (const message of conversation.messages) {
      transcript.append(message.role === "user" ? question(message.content) : answer(message, ctx, alert));
    }
  }
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    alert.textContent = "";
    button.disabled = true;
    input.value = "";
    try {
      await ask(text, state, ctx, alert, transcript);
    } catch (error) {
      input.value = text;
      ctx.fail(alert, error);
    } finally {
      button.disabled = false;
      input.focus();
    }
  });
}

export async function conversations(main) {
  const list = h("ul", { class: "cards" });
  screen(main, "Your conversations", list);
  const items = await api("GET", "/v1/conversations");
  if (!items.length) list.replaceWith(h("p", {}, "No conversations yet. ", h("a", { href: "/chat" }, "Ask your first question.")));
  for (const c of items) {
    list.append(h("li", {}, h("a", { href: `/chat?conversation=${c.id}` }, c.title),
      h("p", { class: "meta" }, `Last active ${when(c.updated_at)}`)));
  }
}

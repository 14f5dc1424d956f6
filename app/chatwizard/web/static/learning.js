// Learning paths (build, reorder with buttons, see progress) and the progress overview.
import { api } from "./api.js";
import { watchedButton } from "./chat.js";
import { announce, field, h, minutes, screen, youtube } from "./dom.js";

function progressBar(done, total, percent, label) {
  return h("p", { class: "progress" },
    h("progress", { max: "100", value: String(percent), "aria-label": label }),
    ` ${done} of ${total} watched (${Math.round(percent)} %)`);
}

function builder(ctx, alert) {
  const title = h("input", { name: "title", required: true, maxlength: "200" });
  const query = h("input", { type: "search", name: "q" });
  const results = h("fieldset", { class: "choices", hidden: true }, h("legend", {}, "Videos to include, in order"));
  const chosen = [];
  const search = async () => {
    if (!query.value.trim()) return;
    try {
      const found = await api("GET", `/v1/videos/search?q=${encodeURIComponent(query.value)}&limit=8`);
      results.replaceChildren(results.firstChild, ...found.videos.map((v) => {
        const box = h("input", { type: "checkbox", value: v.id, checked: chosen.includes(v.id) });
        box.addEventListener("change", () => {
          if (box.checked) chosen.push(v.id);
          else chosen.splice(chosen.indexOf(v.id), 1);
        });
        return h("p", { class: "choice" }, h("label", {}, box, ` ${v.title}`));
      }));
      results.hidden = false;
      announce(`${found.videos.length} videos found.`);
    } catch (error) {
      ctx.fail(alert, error);
    }
  };
  const searchButton = h("button", { type: "button", class: "secondary", onclick: search }, "Search");
  query.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      search();
    }
  });
  const form = h("form", { class: "stack" },
    h("h2", {}, "Build a path"), field("Path title", title),
    h("div", { class: "row" }, field("Find videos", query), searchButton), results,
    h("button", { type: "submit" }, "Create path"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen.length) {
      alert.textContent = "Choose at least one video for the path.";
      return;
    }
    try {
      const path = await api("POST", "/v1/paths", { title: title.value, video_ids: chosen });
      ctx.go(`/paths?path=${path.id}`);
    } catch (error) {
      ctx.fail(alert, error);
    }
  });
  return form;
}

async function overview(main, ctx) {
  const list = h("ul", { class: "cards" });
  const alert = screen(main, "Learning paths", h("h2", {}, "Your paths"), list);
  main.append(builder(ctx, alert));
  const summaries = await api("GET", "/v1/paths");
  if (!summaries.length) list.replaceWith(h("p", {}, "No paths yet: build one below from catalogue videos."));
  for (const p of summaries) {
    list.append(h("li", {}, h("a", { href: `/paths?path=${p.id}` }, p.title),
      progressBar(p.completed, p.videos, p.progress_percent, `Progress of ${p.title}`)));
  }
}

// One path: its videos in order, each movable up or down with a button (keyboard and screen readers).
async function detail(main, ctx, id) {
  const path = await api("GET", `/v1/paths/${encodeURIComponent(id)}`);
  const list = h("ol", { class: "path-items" });
  const bar = h("div");
  const alert = screen(main, path.title, bar, list, h("p", {}, h("a", { href: "/paths" }, "All paths")));
  let items = path.items;
  const refresh = async () => {
    const fresh = await api("GET", `/v1/paths/${encodeURIComponent(id)}`);
    bar.replaceChildren(progressBar(fresh.completed, fresh.videos, fresh.progress_percent, "Path progress"));
  };
  const move = async (index, delta, focusLabel) => {
    const order = items.map((item) => item.id);
    [order[index], order[index + delta]] = [order[index + delta], order[index]];
    try {
      await api("PUT", `/v1/paths/${encodeURIComponent(id)}/order`, { video_ids: order });
      [items[index], items[index + delta]] = [items[index + delta], items[index]];
      draw();
      const moved = items[index + delta];
      announce(`Moved "${moved.title}" to position ${index + delta + 1} of ${items.length}.`);
      const target = list.querySelector(`[aria-label="${CSS.escape(focusLabel)}"]:not([disabled])`)
        ?? list.children[index + delta].querySelector("button:not([disabled])");
      target?.focus();
    } catch (error) {
      ctx.fail(alert, error);
    }
  };
  const draw = () => {
    list.replaceChildren(...items.map((item, i) => {
      const up = `Move "${item.title}" up`;
      const down = `Move "${item.title}" down`;
      return h("li", { class: "path-item" },
        h("a", { href: youtube(item.id), target: "_blank", rel: "noopener noreferrer" }, item.title,
          h("span", { class: "visually-hidden" }, " (opens YouTube in a new tab)")),
        h("p", { class: "meta" }, `${item.channel} · ${minutes(item.duration_s)}`),
        h("div", { class: "row" },
          h("button", { type: "button", class: "secondary", "aria-label": up, disabled: i === 0,
            onclick: () => move(i, -1, up) }, "Up"),
          h("button", { type: "button", class: "secondary", "aria-label": down, disabled: i === items.length - 1,
            onclick: () => move(i, 1, down) }, "Down"),
          item.completed ? h("span", { class: "done" }, "Watched")
            : watchedButton(item.id, item.title, ctx, alert, () => { item.completed = true; refresh(); })));
    }));
  };
  draw();
  bar.replaceChildren(progressBar(path.completed, path.videos, path.progress_percent, "Path progress"));
}

export function paths(main, ctx) {
  const id = ctx.params.get("path");
  return id ? detail(main, ctx, id) : overview(main, ctx);
}

export async function progress(main, ctx) {
  const summary = h("p", { class: "lead" });
  const list = h("ul", { class: "cards" });
  const alert = screen(main, "Your progress", summary, list);
  const draw = async (focusVideo) => {
    const data = await api("GET", "/v1/progress");
    summary.textContent = `You completed ${data.completed} video${data.completed === 1 ? "" : "s"} `
      + `and watched ${minutes(data.watched_s)} in all.`;
    if (!data.videos.length) list.replaceChildren(h("li", {}, "Open a recommended video to start tracking it."));
    else list.replaceChildren(...data.videos.map((v) => h("li", {},
      h("a", { href: youtube(v.video_id), target: "_blank", rel: "noopener noreferrer" }, v.title,
        h("span", { class: "visually-hidden" }, " (opens YouTube in a new tab)")),
      h("p", { class: "meta" }, `${minutes(v.position_s)} of ${minutes(v.duration_s)} watched`),
      v.completed_at ? h("span", { class: "done", tabindex: "-1", "data-video": v.video_id }, "Watched")
        : watchedButton(v.video_id, v.title, ctx, alert, () => draw(v.video_id).catch((e) => ctx.fail(alert, e))))));
    if (focusVideo) list.querySelector(`[data-video="${CSS.escape(focusVideo)}"]`)?.focus();
  };
  await draw();
}

// Builds elements from data without innerHTML, so nothing the API returns is ever parsed as markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// A labelled form control: the label is tied to the input by id, for screen readers and clicks.
let lastId = 0;
export function field(label, control, hint) {
  control.id ||= `f${++lastId}`;
  const hintEl = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("p", { class: "field" }, h("label", { for: control.id }, label), hintEl, control);
}

// Every screen: its heading (focused on arrival) and an alert line for errors.
export function screen(main, title, ...content) {
  const alert = h("p", { class: "alert", role: "alert" });
  main.replaceChildren(h("h1", { tabindex: "-1" }, title), alert, ...content.filter(Boolean));
  document.title = `${title} · Chat Wizard`;
  return alert;
}

// Tells screen readers about something that happened without moving focus.
export function announce(text) {
  document.getElementById("announce").textContent = text;
}

export function minutes(seconds) {
  const m = Math.round(seconds / 60);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function youtube(videoId) {
  return `https://www.youtube.com/watch?v=${encodeURIComponent(videoId)}`;
}

// Signing in (a link by e-mail, or an invitation), the calendar, your data, and inviting (admins).
import { api, download } from "./api.js";
import { announce, field, h, screen, when } from "./dom.js";

// The token travels in the URL fragment, so it never reaches a server log or a Referer header.
function fragmentToken() {
  return new URLSearchParams(location.hash.slice(1)).get("token");
}

async function accept(ctx, alert, token) {
  try {
    ctx.signedIn(await api("POST", "/v1/auth/accept", { token }));
    await ctx.go("/chat", { replace: true });
  } catch (error) {
    history.replaceState(null, "", location.pathname); // a used token is no use to anyone reloading
    ctx.fail(alert, error);
  }
}

export async function signIn(main, ctx) {
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const form = h("form", { class: "stack" }, field("Your e-mail address", email),
    h("button", { type: "submit" }, "Send me a sign-in link"));
  const sent = h("p", { role: "status" });
  const alert = screen(main, "Sign in", ctx.notice ? h("p", { class: "notice" }, ctx.notice) : null,
    h("p", { class: "lead" }, "We e-mail you a link that signs you in. No password needed."), form, sent,
    h("p", { class: "hint" }, "New here? Chat Wizard is by invitation: ask your teacher or admin for one."));
  const token = fragmentToken();
  if (token) return accept(ctx, alert, token);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    try {
      await api("POST", "/v1/auth/sign-in-link", { email: email.value });
      sent.textContent = `If ${email.value} has an account, a sign-in link is on its way. `
        + "It works once, for 15 minutes.";
    } catch (error) {
      ctx.fail(alert, error);
    }
  });
}

export async function invite(main, ctx) {
  const alert = screen(main, "Welcome to Chat Wizard", h("p", { class: "lead" }, "Opening your invitation…"),
    h("p", {}, h("a", { href: "/sign-in" }, "Sign in with your e-mail address instead")));
  const token = fragmentToken();
  if (!token) {
    alert.textContent = "This invitation link is incomplete. Open the link from your e-mail again.";
    return;
  }
  await accept(ctx, alert, token);
}

function sessionForm(ctx, alert, choices, onCreated) {
  const what = h("select", { name: "what", required: true }, choices.map(([value, label]) => h("option", { value }, label)));
  const starts = h("input", { type: "datetime-local", name: "starts", required: true });
  const duration = h("input", { type: "number", name: "duration", min: "5", max: "480", value: "30", required: true });
  const title = h("input", { name: "title", maxlength: "200" });
  const form = h("form", { class: "stack" }, h("h2", {}, "Schedule a study session"),
    field("What to study", what), field("Starts", starts, "In your local time"),
    field("Duration in minutes", duration), field("Title (optional)", title),
    h("button", { type: "submit" }, "Schedule"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [kind, id] = what.value.split(":");
    try {
      await api("POST", "/v1/calendar/sessions", {
        [kind === "path" ? "path_id" : "video_id"]: id, starts_at: new Date(starts.value).toISOString(),
        duration_min: Number(duration.value), title: title.value || null,
      });
      announce("Session scheduled.");
      await onCreated();
    } catch (error) {
      ctx.fail(alert, error);
    }
  });
  return form;
}

function feedSection(ctx, alert) {
  const out = h("div");
  const get = async () => {
    try {
      const feed = await api("POST", "/v1/calendar/feed");
      const url = h("input", { id: "feed-url", readonly: true, value: feed.url });
      out.replaceChildren(field("Your calendar feed URL (keep it private)", url,
        "Add it to your calendar app as a subscription. Getting a new URL stops the old one."),
        h("p", {}, h("a", { href: feed.url.replace(/^https?:/, "webcal:") }, "Open in my calendar app")));
      url.focus();
      url.select();
    } catch (error) {
      ctx.fail(alert, error);
    }
  };
  return h("section", { class: "stack" }, h("h2", {}, "Subscribe in your calendar app"),
    h("p", {}, "Your sessions can appear in Google Calendar, Apple Calendar or Outlook."),
    h("button", { type: "button", class: "secondary", onclick: get }, "Get my feed URL"), out);
}

export async function calendar(main, ctx) {
  const list = h("ul", { class: "cards" });
  const alert = screen(main, "Study calendar");
  const [paths, progress] = await Promise.all([api("GET", "/v1/paths"), api("GET", "/v1/progress")]);
  const choices = [...paths.map((p) => [`path:${p.id}`, `Path: ${p.title}`]),
    ...progress.videos.map((v) => [`video:${v.video_id}`, `Video: ${v.title}`])];
  const draw = async () => {
    const sessions = (await api("GET", "/v1/calendar/sessions")) ?? [];
    if (!sessions.length) list.replaceChildren(h("li", {}, "No sessions scheduled."));
    else list.replaceChildren(...sessions.map((s) => h("li", {}, h("p", { class: "video-title" }, s.title),
      h("p", { class: "meta" }, `${when(s.starts_at)} · ${s.duration_min} min`),
      h("button", { type: "button", class: "secondary", "aria-label": `Cancel "${s.title}"`,
        onclick: () => api("DELETE", `/v1/calendar/sessions/${s.id}`).then(draw).catch((e) => ctx.fail(alert, e)) },
      "Cancel"))));
  };
  main.append(
    choices.length ? sessionForm(ctx, alert, choices, draw)
      : h("p", {}, "Build a learning path or open a video first; then you can schedule time for it."),
    h("h2", {}, "Your sessions"), list, feedSection(ctx, alert));
  await draw();
}

function eraseSection(ctx, alert) {
  const sure = h("input", { type: "checkbox", id: "erase-sure" });
  const erase = async () => {
    if (!sure.checked) {
      alert.textContent = "Tick the box to confirm that you want to erase your account.";
      sure.focus();
      return;
    }
    try {
      await api("DELETE", "/v1/me");
      await ctx.signedOut("Your account and everything in it have been erased.");
    } catch (error) {
      ctx.fail(alert, error);
    }
  };
  return h("section", { class: "stack danger" }, h("h2", {}, "Erase your account"),
    h("p", {}, "This deletes your account, conversations, paths, progress and calendar for good. "
      + "Download your data first if you want to keep it."),
    h("p", { class: "choice" }, h("label", { for: "erase-sure" }, sure,
      " I understand that this cannot be undone")),
    h("button", { type: "button", class: "danger", onclick: erase }, "Erase my account"));
}

export async function privacy(main, ctx) {
  const alert = screen(main, "Your data");
  const data = await api("GET", "/v1/me/export");
  const counts = [["Conversations", data.conversations], ["Messages", data.messages],
    ["Learning paths", data.learning_paths], ["Videos you watched", data.video_progress],
    ["Study sessions", data.calendar_sessions]];
  const save = () => download("/v1/me/export", "chatwizard-data.json").then(
    () => announce("Your data was downloaded."), (error) => ctx.fail(alert, error));
  main.append(
    h("dl", { class: "facts" }, h("dt", {}, "E-mail"), h("dd", {}, data.account.email),
      h("dt", {}, "Plan"), h("dd", {}, data.account.tier),
      h("dt", {}, "Member since"), h("dd", {}, when(data.account.created_at)),
      counts.map(([label, items]) => [h("dt", {}, label), h("dd", {}, String(items.length))])),
    h("section", { class: "stack" }, h("h2", {}, "Download a copy"),
      h("p", {}, "Everything Chat Wizard holds about you, as a JSON file."),
      h("button", { type: "button", class: "secondary", onclick: save }, "Download my data")),
    eraseSection(ctx, alert));
}

export async function admin(main, ctx) {
  if (ctx.session.tier !== "admin") {
    screen(main, "Admin", h("p", {}, "Only administrators can invite learners."));
    return;
  }
  const email = h("input", { type: "email", name: "email", required: true });
  const tier = h("select", { name: "tier" }, h("option", { value: "free" }, "Free"), h("option", { value: "pro" }, "Pro"));
  const sent = h("p", { role: "status" });
  const form = h("form", { class: "stack" }, h("h2", {}, "Invite a learner"), field("E-mail address", email),
    field("Plan", tier), h("button", { type: "submit" }, "Send invitation"), sent);
  const alert = screen(main, "Admin", form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    try {
      const invitation = await api("POST", "/v1/admin/invitations", { email: email.value, tier: tier.value });
      sent.textContent = `Invitation sent to ${invitation.email}. It works until ${when(invitation.expires_at)}.`;
      email.value = "";
    } catch (error) {
      ctx.fail(alert, error);
    }
  });
}

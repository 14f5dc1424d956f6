// The router: one shell, a screen per path; signs the learner in from the session cookie on arrival.
import { ApiError, api, describe, useSession } from "./api.js";
import { admin, calendar, invite, privacy, signIn } from "./account.js";
import { chat, conversations } from "./chat.js";
import { paths, progress } from "./learning.js";
import { screen } from "./dom.js";

const SCREENS = {
  "/sign-in": signIn, "/invite": invite, "/chat": chat, "/conversations": conversations, "/paths": paths,
  "/progress": progress, "/calendar": calendar, "/privacy": privacy, "/admin": admin,
};
const PUBLIC = new Set(["/sign-in", "/invite"]);
const main = document.getElementById("main");

const ctx = {
  session: null,
  notice: null, // a message for the next screen (signed out, erased, session ended)
  params: new URLSearchParams(),
  go(path, { replace = false, notice = null } = {}) {
    history[replace ? "replaceState" : "pushState"](null, "", path);
    ctx.notice = notice;
    return render();
  },
  signedIn(session) {
    ctx.session = session;
    useSession(session);
  },
  signedOut(notice) {
    ctx.signedIn(null);
    return ctx.go("/sign-in", { replace: true, notice });
  },
  // Shows an error where the screen's alert line is; an ended session goes back to sign-in.
  fail(alert, error) {
    if (error instanceof ApiError && error.status === 401 && ctx.session) return ctx.signedOut(error.message);
    alert.textContent = describe(error);
    if (!(error instanceof ApiError)) console.error(error);
  },
};

function showNav(path) {
  const nav = document.getElementById("nav");
  nav.hidden = !ctx.session;
  document.getElementById("nav-admin").hidden = ctx.session?.tier !== "admin";
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function render() {
  const path = location.pathname === "/" ? "/chat" : location.pathname;
  ctx.params = new URLSearchParams(location.search);
  if (!PUBLIC.has(path) && !ctx.session) {
    try {
      ctx.signedIn(await api("GET", "/v1/session"));
    } catch (error) {
      return ctx.go("/sign-in", { replace: true, notice: error.status === 401 ? null : describe(error) });
    }
  }
  showNav(path);
  const show = SCREENS[path] ?? ((m) => screen(m, "Page not found"));
  try {
    await show(main, ctx);
  } catch (error) {
    ctx.fail(main.querySelector(".alert") ?? screen(main, "Something went wrong"), error);
  }
  main.querySelector("h1")?.focus();
}

// Same-origin links change the screen without reloading the shell.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/']");
  if (!link || link.target || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  ctx.go(link.getAttribute("href"));
});
window.addEventListener("popstate", render);
document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await api("POST", "/v1/auth/logout");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) return ctx.fail(main.querySelector(".alert"), error);
  }
  ctx.signedOut("You are signed out.");
});
render();

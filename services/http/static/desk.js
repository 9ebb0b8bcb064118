// The agent desk's only script: "/" focuses the search box, the login form stores its token, and the open
// customer page refreshes itself once a second (the server renders the fragment; nothing is built client-side).
"use strict";

document.addEventListener("keydown", (e) => {
  const box = document.getElementById("q");
  if (e.key === "/" && box && document.activeElement !== box && !(e.target instanceof HTMLInputElement)) {
    e.preventDefault();
    box.focus();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const login = document.getElementById("login");
  if (login) {
    login.addEventListener("submit", (e) => {
      e.preventDefault();
      const token = encodeURIComponent(document.getElementById("token").value.trim());
      document.cookie = `omnitrail_token=${token}; path=/; SameSite=Strict`;
      window.location.assign(login.dataset.next || "/");
    });
  }

  const live = document.getElementById("live");
  if (!live) return;
  let busy = false;
  setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const answer = await fetch(live.dataset.src, {headers: {Accept: "text/html"}});
      if (answer.ok) {
        const html = await answer.text();
        const probe = document.createElement("template");
        probe.innerHTML = html;
        const fresh = probe.content.querySelector("[data-newest]");
        if (fresh && fresh.outerHTML !== live.firstElementChild.outerHTML) {
          live.replaceChildren(...probe.content.childNodes);
        }
      }
    } catch (err) {
      // the worker restarting: try again on the next tick
    } finally {
      busy = false;
    }
  }, 1000);
});

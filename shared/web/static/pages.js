// Shared page behaviour, all optional (the pages work without it):
//  - <form data-idempotent>: sent with fetch and retried on network failures with the same
//    fields (its hidden Idempotency-Key among them), so a flaky network never files twice;
//  - [data-refresh-url]: the element's content is reloaded from that URL (an HTML fragment)
//    every data-refresh-seconds (default 10) while the page is visible;
//  - [data-print]: a button that prints the page.
(function () {
  "use strict";

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function showPage(html, url) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var main = doc.querySelector("main");
    var here = document.querySelector("main");
    if (!main || !here) { document.location.assign(url); return; }
    here.innerHTML = main.innerHTML;
    document.title = doc.title;
    bind(here);
    var summary = here.querySelector("#error-summary, [aria-invalid='true']");
    (summary || here).focus();
  }

  async function sendIdempotent(form, event) {
    event.preventDefault();
    if (form.dataset.sending === "1") { return; }
    form.dataset.sending = "1";
    var button = form.querySelector("button[type='submit'], button:not([type])");
    var status = form.querySelector("[data-send-status]");
    if (button) { button.setAttribute("aria-busy", "true"); button.disabled = true; }
    var body = new URLSearchParams(new FormData(form));
    var attempts = Number(form.dataset.attempts || 6);
    try {
      for (var i = 0; i < attempts; i++) {
        try {
          var response = await fetch(form.action, {
            method: "POST", body: body, credentials: "same-origin",
            headers: { "Accept": "text/html" }
          });
          if (response.status >= 500 && i + 1 < attempts) { throw new Error("server " + response.status); }
          if (response.redirected) { document.location.assign(response.url); return; }
          showPage(await response.text(), response.url);
          return;
        } catch (err) {
          if (status) { status.textContent = status.dataset.retrying || ""; }
          await sleep(Math.min(8000, 500 * Math.pow(2, i)));
        }
      }
      if (status) { status.textContent = status.dataset.failed || ""; }
    } finally {
      form.dataset.sending = "0";
      if (button) { button.removeAttribute("aria-busy"); button.disabled = false; }
    }
  }

  function refresher(el) {
    var seconds = Number(el.dataset.refreshSeconds || 10);
    async function tick() {
      if (!document.hidden) {
        try {
          var response = await fetch(el.dataset.refreshUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } });
          if (response.ok) {
            var html = await response.text();
            if (html !== el.dataset.lastHtml) { el.innerHTML = html; el.dataset.lastHtml = html; }
          }
        } catch (err) { /* offline for now: try again at the next tick */ }
      }
      setTimeout(tick, seconds * 1000);
    }
    setTimeout(tick, seconds * 1000);
  }

  function bind(root) {
    root.querySelectorAll("form[data-idempotent]").forEach(function (form) {
      form.addEventListener("submit", function (event) { sendIdempotent(form, event); });
    });
    root.querySelectorAll("[data-refresh-url]").forEach(refresher);
    root.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
  }

  window.cityhelpPages = { bind: bind };
  bind(document);
})();

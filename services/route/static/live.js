// Live staff pages (department boards, command centre), all optional (the pages work without):
//  - [data-due]: a countdown to that time, every second ("{t} left" / "{t} late" labels);
//  - [data-live-url]: the region is reloaded from that HTML fragment every data-live-seconds
//    when the fragment's [data-signature] differs (new jobs, changed states), but never while
//    someone is typing in it, so a half-written reason is not lost.
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  function tick() {
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var seconds = Math.round((Date.parse(el.dataset.due) - Date.now()) / 1000);
      var late = seconds < 0;
      var s = Math.abs(seconds);
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      var text = (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
      var label = late ? el.dataset.lateLabel : el.dataset.leftLabel;
      if (label) { el.textContent = label.replace("{t}", text); }
      el.classList.toggle("late", late);
    });
  }

  function editing(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName)) {
      return true;
    }
    return Array.prototype.some.call(region.querySelectorAll("textarea"), function (t) {
      return t.value.trim() !== "";
    });
  }

  function live(region) {
    var seconds = Number(region.dataset.liveSeconds || 5);
    async function poll() {
      if (!document.hidden && !editing(region)) {
        try {
          var response = await fetch(region.dataset.liveUrl, {
            credentials: "same-origin", headers: { "Accept": "text/html" }
          });
          if (response.ok) {
            var html = await response.text();
            var doc = new DOMParser().parseFromString(html, "text/html");
            var fresh = doc.querySelector("[data-signature]");
            var shown = region.querySelector("[data-signature]");
            if (fresh && (!shown || fresh.dataset.signature !== shown.dataset.signature)) {
              region.innerHTML = html;
              tick();
            }
          }
        } catch (err) { /* offline for now: try again at the next poll */ }
      }
      setTimeout(poll, seconds * 1000);
    }
    setTimeout(poll, seconds * 1000);
  }

  document.querySelectorAll("[data-live-url]").forEach(live);
  tick();
  setInterval(tick, 1000);
})();

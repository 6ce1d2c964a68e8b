// The request form's "use my location" button: shown only where the browser can locate, reads
// the position once on a tap, and fills the hidden lat/lon fields.
(function () {
  "use strict";
  document.querySelectorAll("[data-locate]").forEach(function (button) {
    var form = button.closest("form");
    var status = form.querySelector("[data-locate-status]");
    if (!("geolocation" in navigator)) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      button.setAttribute("aria-busy", "true");
      navigator.geolocation.getCurrentPosition(function (pos) {
        form.querySelector("[data-lat]").value = pos.coords.latitude.toFixed(5);
        form.querySelector("[data-lon]").value = pos.coords.longitude.toFixed(5);
        status.textContent = button.dataset.ok;
        button.removeAttribute("aria-busy");
      }, function () {
        status.textContent = button.dataset.failed;
        button.removeAttribute("aria-busy");
      }, { enableHighAccuracy: false, timeout: 15000, maximumAge: 60000 });
    });
  });
})();

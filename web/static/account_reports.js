/* Account page: daily report subscriptions (every value written with textContent). */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  var t = window.ChainLensText;
  function load() {
    fetch("/api/reports/subscriptions", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (subs) {
        var body = $("report-subs"); body.textContent = "";
        subs.forEach(function (s) {
          var tr = document.createElement("tr");
          var state = s.active ? (s.confirmed ? t("receiving") : t("waiting"))
                               : s.deactivated_reason ? t("stopped_because", { reason: s.deactivated_reason })
                                                      : t("stopped");
          [s.channel, s.destination, state].forEach(function (v) {
            var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
          });
          var td = document.createElement("td");
          if (s.active) {
            var b = document.createElement("button"); b.type = "button"; b.textContent = t("stop");
            b.addEventListener("click", function () {
              fetch("/api/reports/subscriptions/" + s.id, { method: "DELETE", credentials: "same-origin" }).then(load);
            });
            td.appendChild(b);
          }
          tr.appendChild(td); body.appendChild(tr);
        });
      }).catch(function () {});
  }
  $("report-sub-form").addEventListener("submit", function (e) {
    e.preventDefault();
    fetch("/reports/subscribe", {
      method: "POST", credentials: "same-origin",
      body: new URLSearchParams({ email: $("report-email").value })
    }).then(function (r) {
      $("report-sub-msg").textContent = r.ok ? t("check_confirm")
                                             : t("did_not_work", { status: r.status });
      load();
    });
  });
  load();
})();

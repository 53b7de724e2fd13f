/* Pricing page: the upgrade button only for those below Pro; everything via textContent. */
(function () {
  "use strict";
  var t = window.ChainLensText;
  var upgrade = document.getElementById("upgrade");
  var msg = document.getElementById("msg");
  var current = document.getElementById("current");
  fetch("/api/account", { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (a) {
      if (!a) { upgrade.hidden = false; return; }
      var row = document.querySelector('tr[data-tier="' + a.tier + '"]');
      if (row) row.className = "current";
      upgrade.hidden = !a.can_upgrade;
      if (!a.can_upgrade) {
        current.hidden = false;
        current.textContent = t("on_plan", { plan: t(a.tier) }) +
          (a.can_manage_subscription ? " " + t("manage") : "");
      }
    })
    .catch(function () { upgrade.hidden = false; });
  upgrade.addEventListener("click", function () {
    fetch("/api/payment/checkout", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tier: "pro" }) })
      .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
      .then(function (res) {
        if (res[0]) { location.href = res[1].checkout_url; }
        else { msg.textContent = (res[1].error && res[1].error.message) || t("unavailable"); }
      })
      .catch(function () { msg.textContent = t("unavailable"); });
  });
})();

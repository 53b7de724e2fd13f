(function () {
  "use strict";
  document.getElementById("upgrade").addEventListener("click", function () {
    fetch("/api/payment/checkout", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tier: "pro" }) })
      .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
      .then(function (res) {
        if (res[0]) { location.href = res[1].checkout_url; }
        else { document.getElementById("msg").textContent = (res[1].error && res[1].error.message) || "Upgrades are not available right now."; }
      });
  });
})();

/* Account page: every value is written with textContent, never as HTML. */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  var t = window.ChainLensText;
  function api(method, path, body) {
    return fetch(path, {
      method: method, credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.text().then(function (t) {
        var data = t ? JSON.parse(t) : {};
        if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
        return data;
      });
    });
  }
  function load() {
    api("GET", "/api/account").then(function (a) {
      $("tier").textContent = t(a.tier);
      $("usage").textContent = t("used_of", { used: a.daily_used, limit: a.daily_limit });
      $("cost").textContent = "$" + Number(a.monthly_cost).toFixed(4);
      // a subscription status (Stripe's or Telegram Stars') in words: ACCOUNT_SCRIPT_TEXT status_*
      var status = "";
      if (a.subscription) {
        var statusKey = "status_" + a.subscription.status;
        status = t(statusKey);
        if (status === statusKey) status = a.subscription.status;  // a status we have no words for
      }
      $("subscription").textContent = !a.subscription ? t("none") : a.subscription.expires_at
        ? t("status_until", { status: status, date: a.subscription.expires_at })
        : status;
      $("upgrade").hidden = !a.can_upgrade;
      $("portal").hidden = !a.can_manage_subscription;
      $("signin").hidden = !a.anonymous;
      var email = a.identities.filter(function (i) { return i.indexOf("web:") === 0; })[0];
      $("signedin").hidden = a.anonymous || !email;
      $("email-now").textContent = email ? email.slice(4) : "";
      var list = $("identities"); list.textContent = "";
      a.identities.forEach(function (i) { var li = document.createElement("li"); li.textContent = i; list.appendChild(li); });
    }).catch(function (e) { $("billing-msg").textContent = e.message; });
    api("GET", "/api/keys").then(function (keys) {
      var body = $("keys"); body.textContent = "";
      (keys.keys || keys).forEach(function (k) {
        var tr = document.createElement("tr");
        [k.name || "", k.prefix + "…", k.created_at || ""].forEach(function (v) {
          var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
        });
        var td = document.createElement("td"); var b = document.createElement("button");
        b.type = "button"; b.textContent = t("revoke");
        b.addEventListener("click", function () { api("DELETE", "/api/keys/" + k.id).then(load); });
        td.appendChild(b); tr.appendChild(td); body.appendChild(tr);
      });
    }).catch(function () {});
  }
  $("upgrade").addEventListener("click", function () {
    api("POST", "/api/payment/checkout", { tier: "pro" })
      .then(function (r) { location.href = r.checkout_url; })
      .catch(function (e) { $("billing-msg").textContent = e.message; });
  });
  $("portal").addEventListener("click", function () {
    api("POST", "/api/payment/portal")
      .then(function (r) { location.href = r.portal_url; })
      .catch(function (e) { $("billing-msg").textContent = e.message; });
  });
  $("signout").addEventListener("click", function () {
    api("POST", "/api/auth/logout").then(function () { location.href = "/"; })
      .catch(function (e) { $("billing-msg").textContent = e.message; });
  });
  $("make-code").addEventListener("click", function () {
    api("POST", "/api/link/code").then(function (r) { $("code").hidden = false; $("code").textContent = r.code; })
      .catch(function (e) { $("link-msg").textContent = e.message; });
  });
  $("redeem-form").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/api/link/redeem", { code: $("redeem").value })
      .then(function () { $("link-msg").textContent = t("linked"); load(); })
      .catch(function (err) { $("link-msg").textContent = err.message; });
  });
  $("signin-form").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/api/auth/magic-link", { email: $("email").value })
      .then(function () { $("signin-msg").textContent = t("check_signin"); })
      .catch(function (err) { $("signin-msg").textContent = err.message; });
  });
  $("key-form").addEventListener("submit", function (e) {
    e.preventDefault();
    api("POST", "/api/keys", { name: $("key-name").value }).then(function (r) {
      $("new-key").textContent = t("new_key", { key: r.key }); load();
    }).catch(function (err) { $("new-key").textContent = err.message; });
  });
  // The language: saved on the account when signed in (kept in this browser's cookie too).
  var choice = $("language-choice");
  choice.value = choice.getAttribute("data-current") || "auto";
  $("language-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var value = choice.value;
    var signedIn = !$("signedin").hidden;
    api("PUT", signedIn ? "/api/account/language" : "/api/language", { language: value })
      .then(function () {
        $("language-msg").textContent = signedIn ? t("language_saved") : t("language_sign_in");
        setTimeout(function () { location.reload(); }, 600);
      })
      .catch(function (err) { $("language-msg").textContent = err.message; });
  });
  load();
})();

/* Account page: watchlist and alerts (every value written with textContent). */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  var t = window.ChainLensText;
  function say(text) { $("watch-msg").textContent = text; }
  function send(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: {} };
    if (body) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(url, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var err = (data && data.error) || {};
          var msg = err.message || t("did_not_work", { status: r.status });
          if (err.details && err.details.upgrade_url) { msg += " "; }
          say(msg);
          if (err.details && err.details.upgrade_url) {
            var a = document.createElement("a"); a.href = err.details.upgrade_url;
            a.textContent = t("upgrade"); $("watch-msg").appendChild(a);
          }
          throw new Error(msg);
        }
        return data;
      });
    });
  }
  function button(label, onClick) {
    var b = document.createElement("button"); b.type = "button"; b.textContent = label;
    b.addEventListener("click", onClick); return b;
  }
  function load() {
    fetch("/api/watchlist", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (items) {
        var list = $("watch-items"); list.textContent = "";
        if (!items.length) {
          var li = document.createElement("li"); li.textContent = t("nothing_watched");
          list.appendChild(li);
        }
        items.forEach(function (i) {
          var li = document.createElement("li"); li.textContent = i.display + " ";
          li.appendChild(button(t("remove"), function () {
            send("DELETE", "/api/watchlist?project=" + encodeURIComponent(i.project_id))
              .then(load, function () {});
          }));
          list.appendChild(li);
        });
      }).catch(function () {});
    fetch("/api/alerts", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (alerts) {
        var body = $("alert-rows"); body.textContent = "";
        alerts.forEach(function (a) {
          var tr = document.createElement("tr");
          var state = a.armed ? t("armed") : t("fired");
          [a.description, state].forEach(function (v) {
            var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
          });
          var td = document.createElement("td");
          td.appendChild(button(t("delete"), function () {
            send("DELETE", "/api/alerts/" + a.id).then(load, function () {});
          }));
          tr.appendChild(td); body.appendChild(tr);
        });
      }).catch(function () {});
  }
  $("watch-form").addEventListener("submit", function (e) {
    e.preventDefault();
    send("POST", "/api/watchlist", { project: $("watch-project").value }).then(function (d) {
      say(t(d.added ? "added" : "already", { project: d.project.display }));
      $("watch-project").value = ""; load();
    }, function () {});
  });
  $("alert-form").addEventListener("submit", function (e) {
    e.preventDefault();
    send("POST", "/api/alerts", { alert: $("alert-text").value }).then(function (a) {
      say(t("alert_set", { alert: a.description })); $("alert-text").value = ""; load();
    }, function () {});
  });
  load();
})();

/* Pages' strings: the server renders them from the message catalogue into the body's
 * data-i18n attribute (JSON); scripts read them here. No translations live in JavaScript. */
(function () {
  "use strict";
  var table = {};
  try { table = JSON.parse(document.body.getAttribute("data-i18n") || "{}"); } catch (e) { table = {}; }
  /* The string `key` with each {name} replaced by vars[name]. */
  window.ChainLensText = function (key, vars) {
    var text = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return vars && Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole;
    });
  };
})();

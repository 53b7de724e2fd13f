/* Demo page: each example question is asked in the chat widget when clicked. */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("button.example"), function (button) {
    button.addEventListener("click", function () {
      if (window.ChainLens) window.ChainLens.ask(button.textContent);
    });
  });
})();

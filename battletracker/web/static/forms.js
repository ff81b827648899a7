/* Selects marked data-autosubmit submit their form on change (no inline handlers: the
   Content-Security-Policy allows scripts from /static only). */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.submit();
  });
})();

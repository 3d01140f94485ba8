// The keys' list (apps.keys.admin): a row's Regenerate asks first, as the key's current secret
// stops working at once. The buttons post the list's own form to the row's URL (no script needed).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });
  // Enter in a budget saves the list: the form's first button is the actions' "Go", which would
  // drop the edit with "No action selected".
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !event.target.classList || !event.target.classList.contains("key-budget-input")) {
      return;
    }
    const save = document.querySelector("#changelist-form input[name=_save]");
    if (save) {
      event.preventDefault();
      save.click();
    }
  });
})();

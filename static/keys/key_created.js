// The page showing a new key once (templates/admin/keys/virtualkey/key_created.html): a Copy
// button. The asynchronous clipboard API needs a secure origin (https, or localhost); elsewhere
// (an admin reached over plain http) the old select-and-copy command does it.
(function () {
  "use strict";

  function copyBySelection(input) {
    input.focus();
    input.select();
    input.setSelectionRange(0, input.value.length);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  async function copy(input) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(input.value);
        return true;
      } catch (error) {
        // refused (no permission, page not focused): try the other way
      }
    }
    return copyBySelection(input);
  }

  function setUp() {
    const input = document.getElementById("raw-key");
    const button = document.getElementById("copy-key");
    const status = document.getElementById("copy-status");
    if (!input || !button || !status) return;
    input.addEventListener("focus", () => input.select());
    input.addEventListener("click", () => input.select());
    button.hidden = false;  // hidden until this script can make it work
    button.addEventListener("click", async () => {
      const copied = await copy(input);
      status.className = "key-copy-status " + (copied ? "copied" : "failed");
      status.textContent = copied
        ? "Copied to the clipboard."
        : "Could not copy: select the key and press Ctrl+C (⌘C on a Mac).";
      if (copied) button.textContent = "Copied";
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();

/* Participant pages: small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  function focusErrorSummary() {
    var summary = document.querySelector("[data-focus-on-load]");
    if (summary) {
      summary.focus();
    }
  }

  function guessTimeZone() {
    var select = document.querySelector("select[data-timezone-guess]");
    if (!select || select.value) {
      return; // A zone already confirmed (or chosen before an error) is never overwritten.
    }
    var guess = "";
    try {
      guess = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return;
    }
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === guess) {
        select.value = guess;
        var note = document.querySelector("[data-timezone-guess-note]");
        if (note) {
          note.hidden = false;
        }
        return;
      }
    }
  }

  function submitOnce() {
    // A double tap must not send the form twice (the server is idempotent anyway).
    var forms = document.querySelectorAll("form[data-submit-once]");
    Array.prototype.forEach.call(forms, function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.submitted) {
          event.preventDefault();
          return;
        }
        form.dataset.submitted = "yes";
        var button = form.querySelector("button[type=submit]");
        if (button) {
          button.setAttribute("aria-disabled", "true");
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusErrorSummary();
    guessTimeZone();
    submitOnce();
  });
})();

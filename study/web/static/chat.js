/* The assistant chat: send without reloading and show the reply as it streams in.
   The page works without this script (each form posts and the page reloads with the answer). */
(function () {
  "use strict";

  function csrfToken(form) {
    var field = form.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function bubble(log, who, kind, text) {
    var item = document.createElement("li");
    item.className = "chat-turn " + kind;
    var label = document.createElement("p");
    label.className = "chat-who";
    label.textContent = who;
    var body = document.createElement("div");
    body.className = "chat-text";
    body.textContent = text;
    item.appendChild(label);
    item.appendChild(body);
    log.appendChild(item);
    return item;
  }

  function showError(item, message, retry) {
    item.classList.add("chat-failed");
    var error = document.createElement("p");
    error.className = "chat-error";
    error.setAttribute("role", "alert");
    error.textContent = message;
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Try again";
    button.addEventListener("click", function () {
      item.removeChild(error);
      item.removeChild(button);
      item.classList.remove("chat-failed");
      retry();
    });
    item.appendChild(error);
    item.appendChild(button);
    button.focus();
  }

  /* Parse server-sent events from a fetch body; calls onEvent(name, data) for each. */
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function handle(block) {
      var name = "message";
      var data = [];
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) { name = line.slice(6).trim(); }
        else if (line.indexOf("data:") === 0) { data.push(line.slice(5).replace(/^ /, "")); }
      });
      if (data.length) { onEvent(name, JSON.parse(data.join("\n"))); }
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          if (buffer.trim()) { handle(buffer); }
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          handle(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        return pump();
      });
    }
    return pump();
  }

  function setup(form) {
    var log = document.querySelector("[data-chat-log]");
    var textarea = form.querySelector("textarea");
    var status = document.getElementById("chat-status");
    var button = form.querySelector("button[type=submit]");
    var busy = false;

    function setBusy(value, message) {
      busy = value;
      button.setAttribute("aria-disabled", value ? "true" : "false");
      status.textContent = message || "";
    }

    function offerToRemember(item, turn) {
      var base = log.getAttribute("data-remember-url");
      if (!base) { return; } // only arms with longitudinal memory keep notes
      var actions = document.createElement("p");
      actions.className = "chat-actions";
      var link = document.createElement("a");
      link.href = base + "?from=" + encodeURIComponent(turn);
      link.textContent = "Remember this";
      actions.appendChild(link);
      item.appendChild(actions);
    }

    function streamReply(url, item) {
      var text = item.querySelector(".chat-text");
      if (!text) {
        text = document.createElement("div");
        text.className = "chat-text";
        item.appendChild(text);
      }
      text.textContent = "";
      item.setAttribute("aria-busy", "true");
      setBusy(true, "The assistant is answering…");
      var outcome = null;
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "text/event-stream", "X-CSRFToken": csrfToken(form) }
      }).then(function (response) {
        if (!response.ok || !response.body) { throw new Error("HTTP " + response.status); }
        return readEvents(response, function (name, data) {
          if (name === "piece") { text.textContent += data.text; }
          else if (name === "done") { outcome = "done"; offerToRemember(item, data.turn); }
          else if (name === "error") { outcome = data; }
        });
      }).catch(function () {
        outcome = { message: "The connection was lost. Your message is saved: please try again." };
      }).then(function () {
        item.setAttribute("aria-busy", "false");
        if (outcome === "done") {
          setBusy(false, "The assistant has answered.");
          return;
        }
        if (outcome === null) {
          outcome = { message: "The answer was interrupted. Your message is saved: please try again." };
        }
        text.textContent = "";
        setBusy(false, "");
        showError(item, outcome.message, function () { streamReply(url, item); });
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) { return; }
      var message = textarea.value;
      if (!message.trim()) {
        status.textContent = "Please write a message first.";
        textarea.focus();
        return;
      }
      setBusy(true, "Sending…");
      fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": csrfToken(form) },
        body: new FormData(form)
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (result) {
        if (!result.ok) {
          setBusy(false, result.data.error || "Your message could not be sent.");
          return;
        }
        // Stored on the server: the box can be cleared, the message is not lost.
        bubble(log, "You", "chat-from-you", message);
        textarea.value = "";
        var item = bubble(log, "Assistant", "chat-from-assistant", "");
        return streamReply(result.data.reply_url, item);
      }).catch(function () {
        // Nothing was stored: the text stays in the box to send again.
        setBusy(false, "Your message could not be sent. Please check your connection and try again.");
      });
    });

    Array.prototype.forEach.call(document.querySelectorAll("form[data-retry-form]"), function (retry) {
      retry.addEventListener("submit", function (event) {
        event.preventDefault();
        if (busy) { return; }
        var item = retry.closest("li");
        var error = item.querySelector(".chat-error");
        if (error) { item.removeChild(error); }
        item.removeChild(retry);
        item.classList.remove("chat-failed");
        streamReply(retry.action, item);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-chat-form]");
    if (form && window.fetch && window.ReadableStream && window.TextDecoder) {
      setup(form);
    }
  });
})();

// The admin's playground (templates/admin/gateway/playground.html): mints a short-lived credential
// for the chosen key, calls /v1/chat/completions with it, streams the answer into the page, then
// shows the deployment, latency, tokens and the cost (priced by the server: never here).
(function () {
  "use strict";

  const CREDENTIAL_MARGIN_MS = 60 * 1000; // mint a new one this long before the old one expires

  function $(id) { return document.getElementById(id); }

  function init() {
    const form = $("playground-form");
    if (!form) return;
    const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    const transcript = $("playground-transcript");
    const status = $("playground-status");
    const errorBox = $("playground-error");
    const send = $("playground-send");
    let messages = []; // the conversation so far, sent again with each message
    let credential = null; // {for, value, expiresAt}

    function postJSON(url, body) {
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify(body),
      });
    }

    async function errorText(response) {
      // The gateway's errors are OpenAI-shaped: {"error": {"message", "type", "param", "code"}}.
      const text = await response.text();
      try {
        const error = JSON.parse(text).error || {};
        const code = error.code || error.type || "error";
        return `${response.status} ${code}: ${error.message || text}`;
      } catch (e) {
        return `${response.status}: ${text.slice(0, 500) || response.statusText}`;
      }
    }

    function showError(text) {
      errorBox.textContent = text;
      errorBox.hidden = false;
    }

    function bubble(role, text) {
      const element = document.createElement("div");
      element.className = "playground-message playground-" + role;
      const who = document.createElement("strong");
      who.textContent = role === "user" ? "You" : role === "system" ? "System" : "Assistant";
      const body = document.createElement("div");
      body.className = "playground-text";
      body.textContent = text;
      element.append(who, body);
      transcript.append(element);
      return body;
    }

    async function credentialFor(choice) {
      if (credential && credential.for === choice && credential.expiresAt - Date.now() > CREDENTIAL_MARGIN_MS) {
        return credential.value;
      }
      if (!choice) throw new Error("Pick a key to act as.");
      const [kind, id] = [choice.slice(0, choice.indexOf(":")), choice.slice(choice.indexOf(":") + 1)];
      const body = kind === "key" ? {key_id: Number(id)} : {organization_id: id || null};
      const response = await postJSON(form.dataset.tokenUrl, body);
      if (!response.ok) throw new Error(await errorText(response));
      const minted = await response.json();
      credential = {for: choice, value: minted.credential, expiresAt: Date.parse(minted.expires_at)};
      return credential.value;
    }

    function setResult(id, text, href) {
      const element = $(id);
      element.textContent = "";
      if (href) {
        const link = document.createElement("a");
        link.href = href;
        link.textContent = text;
        element.append(link);
      } else {
        element.textContent = text;
      }
    }

    function milliseconds(value) { return value == null ? "—" : Math.round(value) + " ms"; }

    async function showResult(headers, usage, timing) {
      const deploymentId = headers.get("x-litellm-model-id");
      const requestId = headers.get("x-litellm-call-id") || headers.get("x-request-id");
      $("playground-result").hidden = false;
      setResult("playground-latency", `first token ${milliseconds(timing.firstToken)}, total ${milliseconds(timing.total)}`
        + ` (gateway overhead ${headers.get("x-gateway-overhead-ms") || "?"} ms)`);
      setResult("playground-tokens", usage
        ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion = ${usage.total_tokens}`
        : "not reported by the upstream");
      setResult("playground-request", requestId || "—",
        requestId ? `${form.dataset.spendLogsUrl}?q=${encodeURIComponent(requestId)}` : null);
      setResult("playground-deployment", deploymentId ? "#" + deploymentId : "—");
      setResult("playground-cost", headers.get("x-litellm-response-cost") ? "$" + headers.get("x-litellm-response-cost") : "…");
      if (!deploymentId) return;
      // A stream's headers leave before its usage is known: the server prices it, as it priced the spend log.
      const response = await postJSON(form.dataset.resultUrl,
        {deployment_id: Number(deploymentId), usage: usage, started_at: timing.startedAt / 1000});
      if (!response.ok) {
        setResult("playground-cost", await errorText(response));
        return;
      }
      const result = await response.json();
      const d = result.deployment;
      setResult("playground-deployment",
        `#${d.id} ${d.model_name} → ${d.provider}/${d.upstream_model}${d.api_base ? " at " + d.api_base : ""}`,
        `${form.dataset.deploymentUrl}${d.id}/change/`);
      setResult("playground-cost", result.cost == null ? `unknown (${result.cost_status})`
        : `$${result.cost}` + (result.cost_status === "priced" ? "" : ` (${result.cost_status})`));
    }

    async function readStream(response, onDelta) {
      // Server-sent events: "data: {json}" blocks separated by a blank line, ending with [DONE].
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "", usage = null;
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") return usage;
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(`${chunk.error.code || chunk.error.type || "error"}: ${chunk.error.message}`);
            if (chunk.usage) usage = chunk.usage;
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) onDelta(delta.content);
          }
        }
      }
      return usage;
    }

    async function submit(event) {
      event.preventDefault();
      const text = $("playground-message").value.trim();
      if (!text) return;
      errorBox.hidden = true;
      $("playground-result").hidden = true; // the last answer's, until this one's is known
      send.disabled = true;
      status.textContent = "Sending…";
      const system = $("playground-system").value.trim();
      const outgoing = (system ? [{role: "system", content: system}] : []).concat(messages, [{role: "user", content: text}]);
      const body = {model: $("playground-model").value, messages: outgoing, stream: true,
                    stream_options: {include_usage: true}};
      const temperature = $("playground-temperature").value;
      const maxTokens = $("playground-max-tokens").value;
      if (temperature !== "") body.temperature = Number(temperature);
      if (maxTokens !== "") body.max_tokens = Number(maxTokens);
      const asked = bubble("user", text).parentElement;
      let answered = null;
      try {
        const token = await credentialFor($("playground-key").value);
        const startedAt = Date.now();
        const started = performance.now();
        const response = await fetch(form.dataset.chatUrl, {
          method: "POST", credentials: "omit",
          headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
          body: JSON.stringify(body),
        });
        if (response.status === 401) credential = null; // expired, or its key changed: mint afresh next time
        if (!response.ok) throw new Error(await errorText(response));
        status.textContent = "Streaming…";
        const answer = bubble("assistant", "");
        answered = answer.parentElement;
        let firstToken = null, reply = "";
        const usage = await readStream(response, (delta) => {
          if (firstToken == null) firstToken = performance.now() - started;
          reply += delta;
          answer.textContent = reply;
        });
        const total = performance.now() - started;
        messages = outgoing.filter((m) => m.role !== "system").concat([{role: "assistant", content: reply}]);
        $("playground-message").value = "";
        status.textContent = "Done.";
        await showResult(response.headers, usage, {firstToken, total, startedAt});
      } catch (error) {
        // What failed is not part of the conversation: the message stays in its box to send again.
        asked.remove();
        if (answered) answered.remove();
        status.textContent = "";
        showError(error.message);
      } finally {
        send.disabled = false;
      }
    }

    let searchTimer = null;
    function search() {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(async () => {
        const query = $("playground-key-search").value.trim();
        const response = await fetch(`${form.dataset.keysUrl}?q=${encodeURIComponent(query)}`,
                                     {credentials: "same-origin"});
        if (!response.ok) { showError(await errorText(response)); return; }
        const found = await response.json();
        const list = $("playground-key-list");
        list.replaceChildren(...found.keys.map((key) => new Option(key.label, "key:" + key.id)));
        if (found.keys.length && query) $("playground-key").value = "key:" + found.keys[0].id;
      }, 250);
    }

    form.addEventListener("submit", submit);
    $("playground-key-search").addEventListener("input", search);
    $("playground-clear").addEventListener("click", () => {
      messages = [];
      transcript.replaceChildren();
      errorBox.hidden = true;
      $("playground-result").hidden = true;
      status.textContent = "";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

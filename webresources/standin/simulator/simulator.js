// The simulator page: write as a person on a messaging platform, see what came back.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let accounts = [];
  let pollTimer = null;

  async function call(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error((data.error && data.error.message) || response.statusText);
    }
    return data;
  }

  function who() {
    return {
      account: $("account").value,
      person_id: $("person-id").value.trim(),
      person_name: $("person-name").value.trim(),
    };
  }

  function current() {
    return accounts.find((a) => a.key === $("account").value);
  }

  function show(text) {
    $("result").textContent = text;
  }

  function render(lines) {
    const list = $("lines");
    list.replaceChildren(
      ...lines.map((line) => {
        const item = document.createElement("li");
        item.className = line.sender;
        item.dataset.sender = line.sender;
        const text = document.createElement("span");
        text.className = "text";
        text.textContent = line.text; // never innerHTML: this is other people's text
        const status = document.createElement("span");
        status.className = "status";
        status.textContent =
          (line.sender === "person" ? "webhook answered " : "") + line.status;
        item.append(text);
        if (line.media_url) {
          // What the business sent, as the platform fetched it: a picture shown, a file linked.
          const picture = line.media_kind === "image" || line.media_kind === "picture";
          const media = document.createElement(picture ? "img" : "a");
          media.className = "media";
          if (picture) {
            media.src = line.media_url;
            media.alt = line.text;
          } else {
            media.href = line.media_url;
            media.textContent = "Open";
          }
          item.append(media);
        }
        item.append(status);
        return item;
      }),
    );
    $("empty").hidden = lines.length > 0;
  }

  async function refresh() {
    const { account, person_id } = who();
    if (!account || !person_id) return;
    const query = new URLSearchParams({ account, person: person_id });
    try {
      const data = await call("GET", "/simulator/api/conversation?" + query);
      render(data.lines);
    } catch (error) {
      show(error.message);
    }
  }

  function accountChanged() {
    const account = current();
    $("webhook-url").textContent = account ? "Webhook: " + account.webhook_url : "";
    $("subscribe").hidden = !account || account.channel !== "viber";
    refresh();
  }

  async function send(extra) {
    try {
      const data = await call("POST", "/simulator/api/person-message", { ...who(), ...extra });
      show("Webhook answered " + data.webhook_status + ".");
    } catch (error) {
      show(error.message);
    }
    refresh();
  }

  async function start() {
    accounts = await call("GET", "/simulator/api/accounts");
    $("account").replaceChildren(
      ...accounts.map((a) => {
        const option = document.createElement("option");
        option.value = a.key;
        option.textContent = a.channel + " · " + a.name;
        return option;
      }),
    );
    $("account").addEventListener("change", accountChanged);
    $("person-id").addEventListener("change", refresh);
    $("compose").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("text").value.trim();
      if (!text) return;
      $("text").value = "";
      send({ text });
    });
    // The simulator's own samples: the platforms host what a person sends on their CDN.
    const media = location.origin + "/simulator/media/";
    $("send-picture").addEventListener("click", () => send({ image_url: media + "sample.png" }));
    $("send-file").addEventListener("click", () => send({ file_url: media + "sample.pdf" }));
    $("send-sticker").addEventListener("click", () => send({ sticker_id: "369239263222822" }));
    $("mark-read").addEventListener("click", async () => {
      try {
        await call("POST", "/simulator/api/person-event", { ...who(), event: "read" });
        show("Read receipt sent.");
      } catch (error) {
        show(error.message);
      }
    });
    $("subscribe").addEventListener("click", async () => {
      try {
        await call("POST", "/simulator/api/person-event", { ...who(), event: "subscribed" });
        show("Subscribed.");
      } catch (error) {
        show(error.message);
      }
      refresh();
    });
    $("age").addEventListener("click", async () => {
      try {
        await call("POST", "/simulator/api/age", { account: who().account,
          person_id: who().person_id, hours: 25 });
        show("The last message is now 25 hours older.");
      } catch (error) {
        show(error.message);
      }
    });
    accountChanged();
    pollTimer = setInterval(refresh, 1000);
  }

  window.addEventListener("pagehide", () => clearInterval(pollTimer));
  start().catch((error) => show(error.message));
})();

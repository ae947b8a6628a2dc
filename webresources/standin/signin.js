// Sign-in page of the local app stand-in: lists the embedded Dataverse's people and
// signs in as the one picked (POST /app/api/session gives a token for this tab).
"use strict";

(function (ns) {
  const status = document.getElementById("status");
  const list = document.getElementById("users");

  async function signIn(user, button) {
    button.disabled = true;
    status.textContent = "Signing in as " + user.name + "…";
    try {
      const response = await fetch("/app/api/session", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ user_id: user.id }),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
      ns.saveSession(data);
      location.assign("/app/main");
    } catch (error) {
      status.textContent = "Could not sign in: " + error.message;
      button.disabled = false;
    }
  }

  function render(users) {
    list.replaceChildren(...users.map((user) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "user";
      button.dataset.userId = user.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = user.name;
      const email = document.createElement("span");
      email.className = "email";
      email.textContent = user.email;
      const roles = document.createElement("span");
      roles.className = "roles";
      roles.textContent = user.roles.map((role) => role.name).join(", ") || "No roles";
      button.append(name, email, roles);
      button.addEventListener("click", () => signIn(user, button));
      item.append(button);
      return item;
    }));
  }

  async function start() {
    const current = ns.readSession();
    try {
      const response = await fetch("/app/api/users");
      const users = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error((users.error && users.error.message) || response.statusText);
      render(users);
      status.textContent = current
        ? "Signed in as " + current.user.name + " in this tab. Pick someone else, or "
        : "Sign in as:";
      if (current) {
        const link = document.createElement("a");
        link.href = "/app/main";
        link.textContent = "go back to the app.";
        status.append(link);
      }
    } catch (error) {
      status.textContent = "Could not load the users: " + error.message;
    }
  }

  start();
}(window.CrmChatStandin));

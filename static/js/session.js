// The logged-in user, shared by the pages behind the login: fills in the user's name and the
// CSRF token of every form on the page (the log-out button is a form).
//
//   const me = await loadSession();   // {user: {id, kind, name, email, expires_at}, csrf}

export async function loadSession() {
  const response = await fetch("/api/me", { credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/");
    throw new Error("not logged in");
  }
  if (!response.ok) throw new Error(`main_server answered ${response.status}`);
  const me = await response.json();
  for (const el of document.querySelectorAll("[data-user-name]")) {
    el.textContent = me.user.name || me.user.id;
  }
  for (const el of document.querySelectorAll("[data-user-kind]")) {
    el.textContent = describe(me.user);
  }
  fillCsrf(me.csrf);
  return me;
}

export function fillCsrf(token) {
  for (const input of document.querySelectorAll('input[name="csrf"]')) input.value = token;
}

export function describe(user) {
  if (user.kind === "anonymous") {
    const until = user.expires_at ? new Date(user.expires_at * 1000).toLocaleString() : "";
    return "anonymous: your workbooks are deleted when you log out" +
      (until ? ` or at ${until}` : "");
  }
  if (user.kind === "fake") return "fake login (test system)";
  return user.email || "single sign-on";
}

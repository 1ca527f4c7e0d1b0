// The login page: shows the buttons main_server offers and gives the forms their CSRF token.
import { fillCsrf } from "/static/js/session.js";

async function main() {
  const response = await fetch("/api/login-options", { credentials: "same-origin" });
  const options = await response.json();
  fillCsrf(options.csrf);
  const show = (id, on) => { document.getElementById(id).hidden = !on; };
  show("sso-login", options.sso);
  if (options.sso && options.registration_url) {
    const link = document.getElementById("create-account");
    link.href = options.registration_url;
    link.hidden = false;
  }
  show("anonymous-login", options.anonymous);
  if (options.anonymous_lifetime) {
    const hours = options.anonymous_lifetime / 3600;
    document.getElementById("anonymous-lifetime").textContent =
      hours >= 1 ? `${Math.round(hours)} hour${Math.round(hours) === 1 ? "" : "s"}`
                 : `${Math.round(hours * 60)} minutes`;
  }
  show("fake-login", options.fake_login);
  show("no-login", !options.sso && !options.anonymous && !options.fake_login);
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  const el = document.getElementById("login-error");
  el.textContent = `The login options could not be loaded (${err.message}); reload the page.`;
  el.hidden = false;
});

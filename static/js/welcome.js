// "You are logged in": who, and the Proceed button.
import { loadSession } from "/static/js/session.js";

loadSession().then(() => { document.body.dataset.ready = "true"; });

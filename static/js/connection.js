// The one module that speaks to wssvc. Every page that needs the websocket uses it.
//
//   import { connect } from "/static/js/connection.js";
//
//   const conn = connect({
//     purpose: "list",                 // or "workbook"
//     workbook: null,                  // the workbook id when purpose is "workbook"
//     onMessage(message) {},           // every message that is not a reply to a request
//                                      //   (broadcasts such as workbook.created, hello)
//     onState(state, detail) {},       // "connecting" | "open" | "reconnecting" | "failed" | "closed"
//                                      //   detail: {attempt, delay, reason, reconnected, error}
//     statusElement: document.querySelector("[data-connection-status]"),  // optional
//   });
//
//   const reply = await conn.request("workbook.create", {name: "M31"});
//   conn.send("pong", {ref: "s3"});    // fire and forget
//   conn.close();
//   conn.state                         // the current state
//
// What it does:
// - asks main_server (POST /api/assign) which wssvc to use and gets a single-use ticket, then
//   opens the websocket there; answers the server's pings;
// - on any drop (broker lost 1012, server going away 1001, too slow 4001, ping timeout 4002,
//   network gone) it asks main_server again and reconnects with exponential backoff and
//   jitter (0.25 s doubling to 10 s), showing the state on the page;
// - request(type, fields, {resend}) returns a Promise of the reply (the message whose ref is
//   the request's id). A reply of type "error" rejects with a RequestError (code, message).
//   Requests made while disconnected wait and go out once connected. A request already sent
//   when the connection drops may or may not have been done by the server: it is rejected
//   with a ConnectionLostError, unless it was made with {resend: true} (for requests that
//   are safe to repeat, such as workbook.list), which is sent again after reconnecting;
// - main_server answering 401 (session gone) sends the browser to the login page, and so does
//   the close code 4003 (session ended: the user logged out, here or in another tab, or the
//   session was revoked or expired); the close code 4004 (the user's share of this workbook was
//   revoked) sends it to the Workbook List; 404 (no such workbook) ends in state "failed" with no
//   retry.
//
// Nothing on the page is touched except statusElement, so what the user typed stays.

const BACKOFF_MIN = 250;
const BACKOFF_MAX = 10000;
const REQUEST_TIMEOUT = 60000;
const CLOSE_SESSION_ENDED = 4003;
const LOGIN_PAGE = "/";
const CLOSE_ACCESS_REVOKED = 4004;
const WORKBOOK_LIST = "/workbooks";

export class RequestError extends Error {
  constructor(code, message, reply) {
    super(message);
    this.name = "RequestError";
    this.code = code;
    this.reply = reply;
  }
}

export class ConnectionLostError extends Error {
  constructor(type) {
    super(`the connection was lost before the reply to ${type} arrived; it may or may not ` +
          "have been done: check and try again");
    this.name = "ConnectionLostError";
    this.code = "connection_lost";
  }
}

const STATUS_TEXT = {
  connecting: () => "Connecting…",
  open: () => "Connected",
  reconnecting: (d) => d && d.delay != null
    ? `Connection lost — reconnecting in ${Math.max(1, Math.round(d.delay / 1000))} s…`
    : "Connection lost — reconnecting…",
  failed: (d) => `Not connected: ${(d && d.reason) || "giving up"}`,
  closed: () => "Disconnected",
};

let clientIds = 0;

export function connect({ purpose = "list", workbook = null, onMessage = () => {},
                          onState = () => {}, statusElement = null } = {}) {
  let ws = null;
  let state = "connecting";
  let attempt = 0;
  let opened = 0;
  let closedByUs = false;
  let timer = null;
  let counter = 0;
  let currentUrl = null;
  const prefix = `c${++clientIds}-${Math.random().toString(36).slice(2, 7)}`;
  const pending = new Map(); // id -> {type, fields, resolve, reject, resend, sent, timer}

  function setState(next, detail = {}) {
    state = next;
    if (statusElement) {
      statusElement.textContent = STATUS_TEXT[next](detail);
      statusElement.dataset.state = next;
    }
    try { onState(next, detail); } catch (err) { console.error(err); }
  }

  function toLoginPage(reason) {
    closedByUs = true;
    clearTimeout(timer);
    failAll(reason);
    setState("failed", { reason });
    window.location.assign(LOGIN_PAGE);
  }

  async function ask() {
    const response = await fetch("/api/assign", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(workbook ? { purpose, workbook } : { purpose }),
    });
    if (response.status === 401) {
      toLoginPage("not logged in");
      throw Object.assign(new Error("not logged in"), { fatal: true });
    }
    let body = {};
    try { body = await response.json(); } catch (_) { /* not JSON: treated below */ }
    if (response.status === 404 || response.status === 400) {
      throw Object.assign(new Error(body.message || "not found"), { fatal: true });
    }
    if (!response.ok) throw new Error(body.message || `main_server answered ${response.status}`);
    return body;
  }

  async function open() {
    if (closedByUs) return;
    let where;
    try {
      where = await ask();
    } catch (err) {
      if (err.fatal) {
        failAll(err.message);
        setState("failed", { reason: err.message });
        return;
      }
      retry(err.message);
      return;
    }
    if (closedByUs) return;
    const socket = new WebSocket(where.url);
    ws = socket;
    currentUrl = where.url;
    let helloSeen = false;
    socket.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      if (message.type === "hello" && !helloSeen) {
        helloSeen = true;
        const reconnected = opened > 0;
        opened += 1;
        attempt = 0;
        setState("open", { reconnected, pool: where.pool, client: message.client });
        flush();
        try { onMessage(message); } catch (err) { console.error(err); }
        return;
      }
      if (message.type === "ping") {
        socket.send(JSON.stringify({ type: "pong", id: nextId(), ref: message.id }));
        return;
      }
      const entry = message.ref != null ? pending.get(message.ref) : null;
      if (entry) {
        pending.delete(message.ref);
        clearTimeout(entry.timer);
        if (message.type === "error") {
          entry.reject(new RequestError(message.code, message.message, message));
        } else {
          entry.resolve(message);
        }
        return;
      }
      try { onMessage(message); } catch (err) { console.error(err); }
    };
    socket.onclose = (event) => {
      if (ws !== socket) return;
      ws = null;
      if (closedByUs) return;
      if (event.code === CLOSE_SESSION_ENDED) {
        toLoginPage("your session has ended (logged out)");
        return;
      }
      if (event.code === CLOSE_ACCESS_REVOKED) { // a share of this workbook was revoked
        setState("failed", { reason: "your access to this workbook was revoked" });
        window.location.assign(WORKBOOK_LIST);
        return;
      }
      dropInFlight();
      retry(`closed (${event.code}${event.reason ? ": " + event.reason : ""})`);
    };
    socket.onerror = () => { /* onclose follows and decides */ };
  }

  function retry(reason) {
    attempt += 1;
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (attempt - 1));
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    setState(opened > 0 || attempt > 1 ? "reconnecting" : "connecting",
             { attempt, delay, reason });
    clearTimeout(timer);
    timer = setTimeout(open, delay);
  }

  function nextId() {
    counter += 1;
    return `${prefix}-${counter}`;
  }

  function transmit(id, entry) {
    entry.sent = true;
    ws.send(JSON.stringify({ ...entry.fields, id, type: entry.type }));
  }

  function flush() {
    for (const [id, entry] of pending) {
      if (!entry.sent) transmit(id, entry);
    }
  }

  function dropInFlight() {
    for (const [id, entry] of pending) {
      if (!entry.sent) continue;
      if (entry.resend) {
        entry.sent = false; // goes out again once reconnected
      } else {
        pending.delete(id);
        clearTimeout(entry.timer);
        entry.reject(new ConnectionLostError(entry.type));
      }
    }
  }

  function failAll(reason) {
    for (const [id, entry] of pending) {
      pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(new RequestError("not_connected", reason));
    }
  }

  function request(type, fields = {}, { resend = false, timeout = REQUEST_TIMEOUT } = {}) {
    return new Promise((resolve, reject) => {
      if (closedByUs || state === "failed") {
        reject(new RequestError("not_connected", "the connection is closed"));
        return;
      }
      const id = nextId();
      const entry = { type, fields, resolve, reject, resend, sent: false };
      entry.timer = setTimeout(() => {
        if (pending.delete(id)) reject(new RequestError("timeout", `no reply to ${type}`));
      }, timeout);
      pending.set(id, entry);
      if (ws && ws.readyState === WebSocket.OPEN && state === "open") transmit(id, entry);
    });
  }

  function send(type, fields = {}) {
    if (ws && ws.readyState === WebSocket.OPEN && state === "open") {
      ws.send(JSON.stringify({ ...fields, id: nextId(), type }));
      return true;
    }
    return false;
  }

  function close() {
    closedByUs = true;
    clearTimeout(timer);
    failAll("the connection was closed");
    if (ws) ws.close(1000, "page closed it");
    ws = null;
    setState("closed");
  }

  setState("connecting");
  open();
  return {
    request,
    send,
    close,
    get state() { return state; },
    /** The websocket URL in use (its host serves this page's plots over HTTP(S)). */
    get url() { return currentUrl; },
  };
}

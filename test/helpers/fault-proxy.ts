/**
 * An HTTP/1.1 proxy on 127.0.0.1 in front of a (plain-HTTP) registry that misbehaves on a
 * schedule the test sets: it cuts the connection after N bytes of a body (a response body for a
 * pull, a request body for a push), answers a status of its own (500, 503, 429 with
 * `Retry-After`) instead of forwarding, or stalls a body for a while. Each rule matches requests
 * by method and path, lets `skip` of them through first, then fires `times` times (or on `every`
 * Nth match). Every request is logged (method, path, `Range` asked for, status, bytes each way,
 * the fault applied) so a test can count what went through: the bytes of a blob served again
 * after a resume, how many retries a 429 burst cost.
 *
 * Requests are forwarded with their headers as sent (Host included, so the registry's upload
 * `Location`s name the proxy); a `Location` naming the upstream is rewritten to the proxy all the
 * same. No credential is logged: the log keeps no header but `Range`.
 */
import http from "node:http";
import type { Socket } from "node:net";

export type FaultAction =
  /** cut the connection once this many bytes of the body went through */
  | { kind: "drop"; afterBytes: number }
  /**
   * answer this status (body: a distribution error) without forwarding; 429/503 may carry
   * Retry-After (seconds); `headers` are added (a 401's `WWW-Authenticate`, to play an expired token)
   */
  | { kind: "status"; status: number; retryAfter?: number; headers?: Record<string, string> }
  /** pause the body for `ms` once this many bytes went through, then go on */
  | { kind: "stall"; afterBytes: number; ms: number };

export interface FaultRule {
  /** methods matched (default any) */
  method?: string | string[];
  /** path matched: a RegExp, or a substring of the path and query (default any) */
  path?: RegExp | string;
  /** let this many matching requests through before firing */
  skip?: number;
  /** fire this many times (default 1; Infinity for always) */
  times?: number;
  /** fire only on every Nth matching request after `skip` (default 1: each) */
  every?: number;
  /** the body a drop or stall counts: "response" (default for GET) or "request" (default for PATCH, PUT, POST) */
  body?: "request" | "response";
  action: FaultAction;
}

export interface ProxyLogEntry {
  method: string;
  /** path and query as requested */
  path: string;
  /** the `Range` header the client sent, if any */
  range: string | null;
  /** the status the client got (0 when the connection was cut before the head) */
  status: number;
  /** response body bytes sent to the client, request body bytes received from it */
  bytesDown: number;
  bytesUp: number;
  /** the fault applied to this request, if any */
  fault?: FaultAction["kind"];
}

export interface FaultProxy {
  /** `127.0.0.1:PORT` of the proxy (what the client is pointed at) */
  host: string;
  url: string;
  /** the schedule, mutable: push rules, or empty it, between runs */
  rules: FaultRule[];
  log: ProxyLogEntry[];
  /** faults applied so far, by kind (status faults also by code under `status:CODE`) */
  counts: Record<string, number>;
  /** response body bytes sent for requests whose path holds `pathPart` (e.g. a blob's digest) */
  bytesDown(pathPart?: string): number;
  /** request body bytes received for requests whose path holds `pathPart` */
  bytesUp(pathPart?: string): number;
  /** resolve once `pred()` holds (checked every 20 ms); reject after `timeoutMs` */
  waitFor(pred: () => boolean, timeoutMs?: number): Promise<void>;
  /** close the listener and every open connection */
  stop(): Promise<void>;
}

interface RuleState { rule: FaultRule; seen: number; fired: number }

function matches(rule: FaultRule, method: string, path: string): boolean {
  if (rule.method) {
    const ms = Array.isArray(rule.method) ? rule.method : [rule.method];
    if (!ms.some((m) => m.toUpperCase() === method)) return false;
  }
  if (rule.path instanceof RegExp) return rule.path.test(path);
  if (typeof rule.path === "string") return path.includes(rule.path);
  return true;
}

/**
 * Start a proxy in front of `upstream` (`http://127.0.0.1:PORT`). The caller stops it.
 */
export async function startFaultProxy(upstream: string, rules: FaultRule[] = []): Promise<FaultProxy> {
  const up = new URL(upstream);
  if (up.protocol !== "http:") throw new Error("fault proxy: the upstream must be plain http");
  const states = new Map<FaultRule, RuleState>();
  const log: ProxyLogEntry[] = [];
  const counts: Record<string, number> = {};
  const sockets = new Set<Socket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const proxy: FaultProxy = {
    host: "", url: "", rules, log, counts,
    bytesDown: (p) => log.filter((e) => p === undefined || e.path.includes(p)).reduce((a, e) => a + e.bytesDown, 0),
    bytesUp: (p) => log.filter((e) => p === undefined || e.path.includes(p)).reduce((a, e) => a + e.bytesUp, 0),
    async waitFor(pred, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > end) throw new Error("fault proxy: condition not met in time");
        await Bun.sleep(20);
      }
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const pick = (method: string, path: string): FaultRule | undefined => {
    for (const rule of proxy.rules) {
      if (!matches(rule, method, path)) continue;
      let st = states.get(rule);
      if (!st) { st = { rule, seen: 0, fired: 0 }; states.set(rule, st); }
      st.seen++;
      const n = st.seen - (rule.skip ?? 0);
      if (n <= 0 || st.fired >= (rule.times ?? 1)) continue;
      if ((n - 1) % (rule.every ?? 1) !== 0) continue;
      st.fired++;
      return rule;
    }
    return undefined;
  };
  const count = (k: string) => { counts[k] = (counts[k] ?? 0) + 1; };
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => { timers.delete(t); f(); }, ms);
    timers.add(t);
  };

  const server = http.createServer((req, res) => {
    const method = (req.method ?? "GET").toUpperCase();
    const path = req.url ?? "/";
    const entry: ProxyLogEntry = { method, path, range: (req.headers.range as string | undefined) ?? null, status: 0, bytesDown: 0, bytesUp: 0 };
    log.push(entry);
    const rule = pick(method, path);
    const action = rule?.action;
    if (action) { entry.fault = action.kind; count(action.kind); }
    const side = rule?.body ?? (method === "GET" || method === "HEAD" ? "response" : "request");
    const socket = req.socket;

    if (action?.kind === "status") {
      count(`status:${action.status}`);
      req.on("data", (c: Buffer) => { entry.bytesUp += c.length; });
      req.on("end", () => {
        const code = action.status === 429 ? "TOOMANYREQUESTS" : action.status === 401 ? "UNAUTHORIZED" : "UNKNOWN";
        const body = JSON.stringify({ errors: [{ code, message: `fault proxy: ${action.status}`, detail: null }] });
        const headers: Record<string, string> = { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) };
        if (action.retryAfter !== undefined) headers["retry-after"] = String(action.retryAfter);
        for (const [k, v] of Object.entries(action.headers ?? {})) headers[k.toLowerCase()] = v;
        entry.status = action.status;
        res.writeHead(action.status, headers);
        res.end(body);
      });
      return;
    }

    const headers = { ...req.headers };
    const upReq = http.request({ host: up.hostname, port: up.port, method, path, headers });
    let cut = false;
    const cutNow = () => {
      if (cut) return;
      cut = true;
      upReq.destroy();
      socket.destroy();
    };
    res.on("close", () => { if (!res.writableFinished) { cut = true; upReq.destroy(); } });
    upReq.on("error", () => { if (!cut) { cut = true; socket.destroy(); } });

    // the request body, counted, cut or stalled
    let upDone = false;
    req.on("data", (c: Buffer) => {
      if (cut) return;
      let chunk = c;
      if (side === "request" && action?.kind === "drop" && !upDone && entry.bytesUp + chunk.length >= action.afterBytes) {
        const keep = Math.max(0, action.afterBytes - entry.bytesUp);
        entry.bytesUp += keep;
        upDone = true;
        upReq.write(chunk.subarray(0, keep), () => cutNow());
        return;
      }
      if (side === "request" && action?.kind === "stall" && !upDone && entry.bytesUp + chunk.length >= action.afterBytes) {
        upDone = true;
        const keep = Math.max(0, action.afterBytes - entry.bytesUp);
        entry.bytesUp += chunk.length;
        upReq.write(chunk.subarray(0, keep));
        chunk = chunk.subarray(keep);
        req.pause();
        later(action.ms, () => { if (!cut) { upReq.write(chunk); req.resume(); } });
        return;
      }
      entry.bytesUp += chunk.length;
      if (!upReq.write(chunk)) { req.pause(); upReq.once("drain", () => req.resume()); }
    });
    req.on("end", () => { if (!cut) later(0, () => { if (!cut) upReq.end(); }); });

    upReq.on("response", (upRes) => {
      const h: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers)) {
        if (v === undefined) continue;
        h[k] = k === "location" && typeof v === "string" ? v.replace(`//${up.host}`, `//${proxy.host}`) : v;
      }
      entry.status = upRes.statusCode ?? 0;
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, h);
      let stalled = false;
      upRes.on("data", (c: Buffer) => {
        if (cut) return;
        let chunk = c;
        if (side === "response" && action?.kind === "drop" && entry.bytesDown + chunk.length >= action.afterBytes) {
          const keep = Math.max(0, action.afterBytes - entry.bytesDown);
          entry.bytesDown += keep;
          upRes.pause();
          res.write(chunk.subarray(0, keep), () => cutNow());
          return;
        }
        if (side === "response" && action?.kind === "stall" && !stalled && entry.bytesDown + chunk.length >= action.afterBytes) {
          stalled = true;
          const keep = Math.max(0, action.afterBytes - entry.bytesDown);
          entry.bytesDown += keep;
          res.write(chunk.subarray(0, keep));
          const rest = chunk.subarray(keep);
          upRes.pause();
          later(action.ms, () => { if (!cut) { entry.bytesDown += rest.length; res.write(rest); upRes.resume(); } });
          return;
        }
        entry.bytesDown += chunk.length;
        if (!res.write(chunk)) { upRes.pause(); res.once("drain", () => upRes.resume()); }
      });
      upRes.on("end", () => { if (!cut) res.end(); });
      upRes.on("error", () => cutNow());
    });
  });
  server.on("connection", (s: Socket) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  proxy.host = `127.0.0.1:${port}`;
  proxy.url = `http://${proxy.host}`;
  return proxy;
}

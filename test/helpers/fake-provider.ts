/**
 * A fake of the three providers' send APIs on loopback, for adapter tests, dispatcher tests and
 * benchmarks. One HTTP server answers all three:
 *
 *   WhatsApp Cloud API  POST {url}/v23.0/{PHONE_NUMBER_ID}/messages     (Bearer token, JSON)
 *   Twilio              POST {url}/2010-04-01/Accounts/{Sid}/Messages.json (Basic auth, form)
 *   Africa's Talking    POST {url}/version1/messaging                  (apiKey header, form)
 *
 * Usage (in-process):
 *
 *   const fake = await startFakeProvider();           // { latencyMs, record, credentials } optional
 *   const config = loadConfig({ ...fake.env(), DATABASE_URL: ... });  // base URLs + credentials
 *   ... send ...
 *   fake.accepted('+51987654321')   // messages accepted for that recipient (phone keys are E.164 with '+',
 *                                   //  WhatsApp username users by their user_id)
 *   fake.duplicates()               // recipients that were accepted more than once
 *   fake.requests                   // every request, parsed (set record:false in benchmarks)
 *   fake.fail({ provider: 'whatsapp', times: 2, ...whatsappError(131056) })  // next 2 WhatsApp sends throttled
 *   fake.fail({ to: '+51987654321', ...twilioError(21610) })                  // always for that recipient
 *   fake.latencyMs = 50;  fake.reset();  await fake.close();
 *
 * Usage (separate process, so that a test can SIGKILL the sender without losing the counts, or a
 * benchmark can keep the fake off the sender's core):
 *
 *   const fake = await spawnFakeProvider({ latencyMs: 0 });
 *   const stats = await fake.stats();    // { total, accepted: {to: n}, attempts: {to: n}, duplicates: [...] }
 *   await fake.configure({ latencyMs: 5, faults: [...] });  await fake.close();
 *
 * The same control endpoints are served in-process too: GET /_fake/stats, POST /_fake/config,
 * POST /_fake/reset.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export type FakeProviderName = 'whatsapp' | 'twilio' | 'africastalking';

export interface FakeCredentials {
  whatsappToken: string;
  whatsappPhoneNumberId: string;
  twilioAccountSid: string;
  twilioAuthToken: string;
  atUsername: string;
  atApiKey: string;
}

export const FAKE_CREDENTIALS: FakeCredentials = {
  whatsappToken: 'EAAfaketoken',
  whatsappPhoneNumberId: '106540352242922',
  twilioAccountSid: 'AC00000000000000000000000000000001',
  twilioAuthToken: 'fake_twilio_auth_token_0123456789',
  atUsername: 'sandbox',
  atApiKey: 'atsk_fake_api_key_0123456789',
};

export interface FakeRequest {
  provider: FakeProviderName;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  raw: string;
  /** JSON body (WhatsApp) or form fields (Twilio, Africa's Talking). */
  body: Record<string, unknown>;
  /** Recipients as keyed in the counts (E.164 with '+', or a WhatsApp user_id). */
  to: string[];
  status: number;
  /** Provider id given to each accepted recipient. */
  providerIds: string[];
  at: number;
}

/** A canned error. Africa's Talking reports most errors per recipient inside a 201: use `atStatus`. */
export interface FakeFault {
  provider?: FakeProviderName;
  /** Only for this recipient (E.164 with '+' or user_id). */
  to?: string;
  /** How many requests it applies to (default: every one). */
  times?: number;
  status: number;
  body?: unknown;
  /** Africa's Talking: the per-recipient statusCode/status instead of an HTTP error. */
  atStatus?: { statusCode: number; status: string };
  headers?: Record<string, string>;
}

export interface FakeProviderOptions {
  latencyMs?: number;
  /** Keep every request for assertions (default true; benchmarks set false and read the counts). */
  record?: boolean;
  /** Check credentials (default FAKE_CREDENTIALS); null accepts anything. */
  credentials?: FakeCredentials | null;
  port?: number;
}

export interface FakeStats {
  total: number;
  acceptedTotal: number;
  accepted: Record<string, number>;
  attempts: Record<string, number>;
  duplicates: string[];
}

/** WhatsApp Graph API error body, as Meta sends it. */
export function whatsappError(code: number, status = 400, message = 'fake error'): Pick<FakeFault, 'status' | 'body' | 'provider'> {
  return {
    provider: 'whatsapp',
    status,
    body: { error: { message: `(#${code}) ${message}`, type: 'OAuthException', code, error_data: { messaging_product: 'whatsapp', details: message }, fbtrace_id: 'AbCdEfFake' } },
  };
}

/** Twilio REST API error body. */
export function twilioError(code: number, status = code === 20429 ? 429 : 400, message = 'fake error'): Pick<FakeFault, 'status' | 'body' | 'provider'> {
  return { provider: 'twilio', status, body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status } };
}

/** Africa's Talking per-recipient failure (the request itself answers 201). */
export function atRecipientError(statusCode: number, status: string): Pick<FakeFault, 'status' | 'atStatus' | 'provider'> {
  return { provider: 'africastalking', status: 201, atStatus: { statusCode, status } };
}

interface LiveFault extends FakeFault {
  left: number;
}

function e164(v: string): string {
  const s = v.trim();
  return /^\d{6,15}$/.test(s) ? '+' + s : s;
}

export class FakeProvider {
  readonly server: Server;
  url = '';
  latencyMs: number;
  record: boolean;
  credentials: FakeCredentials | null;
  requests: FakeRequest[] = [];
  total = 0;
  acceptedTotal = 0;
  private acceptedBy = new Map<string, number>();
  private attemptsBy = new Map<string, number>();
  private faults: LiveFault[] = [];
  private seq = 0;
  /** Ids are unique across fakes and restarts: a random prefix and a counter. */
  private readonly prefix = randomBytes(6).toString('hex').toUpperCase();

  constructor(opts: FakeProviderOptions = {}) {
    this.latencyMs = opts.latencyMs ?? 0;
    this.record = opts.record ?? true;
    this.credentials = opts.credentials === undefined ? FAKE_CREDENTIALS : opts.credentials;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', () => resolve()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Settings that point every channel at this fake, with matching credentials. */
  env(): FakeEnv {
    return fakeEnv(this.url, this.credentials ?? FAKE_CREDENTIALS);
  }

  accepted(to: string): number {
    return this.acceptedBy.get(to) ?? 0;
  }

  attempts(to: string): number {
    return this.attemptsBy.get(to) ?? 0;
  }

  duplicates(): string[] {
    return [...this.acceptedBy].filter(([, n]) => n > 1).map(([to]) => to);
  }

  stats(): FakeStats {
    return { total: this.total, acceptedTotal: this.acceptedTotal, accepted: Object.fromEntries(this.acceptedBy), attempts: Object.fromEntries(this.attemptsBy), duplicates: this.duplicates() };
  }

  fail(fault: FakeFault): void {
    this.faults.push({ ...fault, left: fault.times ?? Infinity });
  }

  clearFaults(): void {
    this.faults = [];
  }

  reset(): void {
    this.requests = [];
    this.total = 0;
    this.acceptedTotal = 0;
    this.acceptedBy.clear();
    this.attemptsBy.clear();
    this.faults = [];
  }

  async close(): Promise<void> {
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      try {
        this.dispatch(req, res, raw);
      } catch (err) {
        send(res, 500, { error: String(err) });
      }
    });
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path.startsWith('/_fake/')) return this.control(req, res, path, raw);
    if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed' });
    let m: RegExpExecArray | null;
    if ((m = /^\/v\d+\.\d+\/([^/]+)\/messages$/.exec(path))) return this.whatsapp(req, res, path, raw, m[1]);
    if ((m = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(path))) return this.twilio(req, res, path, raw, m[1]);
    if (path === '/version1/messaging') return this.africastalking(req, res, path, raw);
    send(res, 404, { error: 'unknown path' });
  }

  private control(req: IncomingMessage, res: ServerResponse, path: string, raw: string): void {
    if (path === '/_fake/stats') return send(res, 200, this.stats());
    if (path === '/_fake/reset' && req.method === 'POST') {
      this.reset();
      return send(res, 200, {});
    }
    if (path === '/_fake/config' && req.method === 'POST') {
      const c = JSON.parse(raw || '{}') as { latencyMs?: number; faults?: FakeFault[]; record?: boolean };
      if (typeof c.latencyMs === 'number') this.latencyMs = c.latencyMs;
      if (typeof c.record === 'boolean') this.record = c.record;
      if (Array.isArray(c.faults)) {
        this.clearFaults();
        for (const f of c.faults) this.fail(f);
      }
      return send(res, 200, {});
    }
    send(res, 404, { error: 'unknown control path' });
  }

  /** The first live fault for this provider and any of these recipients, consumed once. */
  private takeFault(provider: FakeProviderName, to: string[]): LiveFault | undefined {
    for (const f of this.faults) {
      if (f.left <= 0) continue;
      if (f.provider && f.provider !== provider) continue;
      if (f.to && !to.includes(f.to)) continue;
      f.left--;
      return f;
    }
    return undefined;
  }

  private count(to: string[], accepted: boolean[]): void {
    this.total++;
    to.forEach((t, i) => {
      this.attemptsBy.set(t, (this.attemptsBy.get(t) ?? 0) + 1);
      if (accepted[i]) {
        this.acceptedBy.set(t, (this.acceptedBy.get(t) ?? 0) + 1);
        this.acceptedTotal++;
      }
    });
  }

  private respond(res: ServerResponse, status: number, body: unknown, rec: Omit<FakeRequest, 'status' | 'at'>, headers?: Record<string, string>): void {
    if (this.record) this.requests.push({ ...rec, status, at: Date.now() });
    const go = () => send(res, status, body, headers);
    if (this.latencyMs > 0) setTimeout(go, this.latencyMs);
    else go();
  }

  private whatsapp(req: IncomingMessage, res: ServerResponse, path: string, raw: string, phoneNumberId: string): void {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return send(res, 400, whatsappError(100, 400, 'Invalid JSON').body);
    }
    const recipient = typeof body.to === 'string' ? body.to : typeof body.recipient === 'string' ? body.recipient : '';
    const to = recipient ? [e164(recipient)] : [];
    const rec = { provider: 'whatsapp' as const, method: req.method ?? 'POST', path, headers: req.headers, raw, body, to, providerIds: [] as string[] };
    const c = this.credentials;
    if (c && (req.headers.authorization !== `Bearer ${c.whatsappToken}` || phoneNumberId !== c.whatsappPhoneNumberId)) {
      this.count(to, [false]);
      const e = whatsappError(190, 401, 'Invalid OAuth access token');
      return this.respond(res, e.status, e.body, rec);
    }
    if (body.messaging_product !== 'whatsapp' || !recipient || typeof body.type !== 'string') {
      this.count(to, [false]);
      const e = whatsappError(100, 400, 'Invalid parameter');
      return this.respond(res, e.status, e.body, rec);
    }
    const fault = this.takeFault('whatsapp', to);
    if (fault) {
      this.count(to, [false]);
      return this.respond(res, fault.status, fault.body ?? {}, rec, fault.headers);
    }
    const id = `wamid.FAKE${this.prefix}${(++this.seq).toString(36).toUpperCase()}`;
    rec.providerIds.push(id);
    this.count(to, [true]);
    const contact = typeof body.to === 'string' ? { input: body.to, wa_id: String(body.to).replace(/^\+/, '') } : { input: body.recipient, user_id: body.recipient };
    this.respond(res, 200, { messaging_product: 'whatsapp', contacts: [contact], messages: [{ id, message_status: 'accepted' }] }, rec);
  }

  private twilio(req: IncomingMessage, res: ServerResponse, path: string, raw: string, accountSid: string): void {
    const form = Object.fromEntries(new URLSearchParams(raw));
    const to = form.To ? [e164(form.To)] : [];
    const rec = { provider: 'twilio' as const, method: req.method ?? 'POST', path, headers: req.headers, raw, body: form as Record<string, unknown>, to, providerIds: [] as string[] };
    const c = this.credentials;
    if (c) {
      const expected = 'Basic ' + Buffer.from(`${c.twilioAccountSid}:${c.twilioAuthToken}`).toString('base64');
      if (req.headers.authorization !== expected || accountSid !== c.twilioAccountSid) {
        this.count(to, [false]);
        const e = twilioError(20003, 401, 'Authenticate');
        return this.respond(res, e.status, e.body, rec);
      }
    }
    if (!form.To || (!form.From && !form.MessagingServiceSid) || !form.Body) {
      this.count(to, [false]);
      const e = twilioError(21604, 400, "A 'To', 'From' and 'Body' are required");
      return this.respond(res, e.status, e.body, rec);
    }
    const fault = this.takeFault('twilio', to);
    if (fault) {
      this.count(to, [false]);
      return this.respond(res, fault.status, fault.body ?? {}, rec, fault.headers);
    }
    const sid = 'SM' + this.prefix.toLowerCase() + (++this.seq).toString(16).padStart(20, '0');
    rec.providerIds.push(sid);
    this.count(to, [true]);
    const now = new Date().toUTCString();
    this.respond(
      res,
      201,
      {
        account_sid: accountSid,
        api_version: '2010-04-01',
        body: form.Body,
        date_created: now,
        date_sent: null,
        date_updated: now,
        direction: 'outbound-api',
        error_code: null,
        error_message: null,
        from: form.From ?? null,
        messaging_service_sid: form.MessagingServiceSid ?? null,
        num_media: '0',
        num_segments: '1',
        price: null,
        price_unit: 'USD',
        sid,
        status: form.MessagingServiceSid ? 'accepted' : 'queued',
        to: form.To,
        uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
      },
      rec,
    );
  }

  private africastalking(req: IncomingMessage, res: ServerResponse, path: string, raw: string): void {
    const form = Object.fromEntries(new URLSearchParams(raw));
    const to = (form.to ?? '').split(',').map((s) => e164(s)).filter(Boolean);
    const rec = { provider: 'africastalking' as const, method: req.method ?? 'POST', path, headers: req.headers, raw, body: form as Record<string, unknown>, to, providerIds: [] as string[] };
    const c = this.credentials;
    if (c && (req.headers.apikey !== c.atApiKey || form.username !== c.atUsername)) {
      this.count(to, to.map(() => false));
      if (this.record) this.requests.push({ ...rec, status: 401, at: Date.now() });
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('The supplied authentication is invalid');
      return;
    }
    if (to.length === 0 || !form.message) {
      this.count(to, to.map(() => false));
      return this.respond(res, 400, 'Must have message and to', rec);
    }
    const fault = this.takeFault('africastalking', to);
    if (fault && !fault.atStatus) {
      this.count(to, to.map(() => false));
      return this.respond(res, fault.status, fault.body ?? {}, rec, fault.headers);
    }
    const recipients = to.map((number) => {
      const failed = fault?.atStatus && (!fault.to || fault.to === number) ? fault.atStatus : undefined;
      if (failed) return { statusCode: failed.statusCode, number, status: failed.status, cost: '0', messageId: 'None' };
      const messageId = 'ATXid_' + this.prefix.toLowerCase() + (++this.seq).toString(16).padStart(20, '0');
      rec.providerIds.push(messageId);
      return { statusCode: 101, number, status: 'Success', cost: 'KES 0.8000', messageId, messageParts: 1 };
    });
    this.count(to, recipients.map((r) => r.statusCode >= 100 && r.statusCode <= 102));
    const sent = recipients.filter((r) => r.statusCode >= 100 && r.statusCode <= 102).length;
    this.respond(res, 201, { SMSMessageData: { Message: `Sent to ${sent}/${to.length} Total Cost: KES ${(sent * 0.8).toFixed(4)}`, Recipients: recipients } }, rec);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export type FakeEnv = Record<
  | 'WHATSAPP_API_URL' | 'WHATSAPP_ACCESS_TOKEN' | 'WHATSAPP_PHONE_NUMBER_ID' | 'WHATSAPP_APP_SECRET' | 'WHATSAPP_VERIFY_TOKEN'
  | 'TWILIO_API_URL' | 'TWILIO_ACCOUNT_SID' | 'TWILIO_AUTH_TOKEN' | 'TWILIO_FROM'
  | 'AFRICASTALKING_API_URL' | 'AFRICASTALKING_USERNAME' | 'AFRICASTALKING_API_KEY' | 'AFRICASTALKING_FROM' | 'AFRICASTALKING_WEBHOOK_SECRET',
  string
>;

export function fakeEnv(url: string, c: FakeCredentials = FAKE_CREDENTIALS): FakeEnv {
  return {
    WHATSAPP_API_URL: `${url}/v23.0`,
    WHATSAPP_ACCESS_TOKEN: c.whatsappToken,
    WHATSAPP_PHONE_NUMBER_ID: c.whatsappPhoneNumberId,
    WHATSAPP_APP_SECRET: 'fake_app_secret_0123456789',
    WHATSAPP_VERIFY_TOKEN: 'fake_verify_token',
    TWILIO_API_URL: url,
    TWILIO_ACCOUNT_SID: c.twilioAccountSid,
    TWILIO_AUTH_TOKEN: c.twilioAuthToken,
    TWILIO_FROM: '+15005550006',
    AFRICASTALKING_API_URL: url,
    AFRICASTALKING_USERNAME: c.atUsername,
    AFRICASTALKING_API_KEY: c.atApiKey,
    AFRICASTALKING_FROM: 'AYNI',
    AFRICASTALKING_WEBHOOK_SECRET: 'fake_at_webhook_secret_0123456789',
  };
}

export async function startFakeProvider(opts: FakeProviderOptions = {}): Promise<FakeProvider> {
  return new FakeProvider(opts).listen(opts.port ?? 0);
}

export interface SpawnedFakeProvider {
  url: string;
  child: ChildProcess;
  env(): FakeEnv;
  stats(): Promise<FakeStats>;
  configure(c: { latencyMs?: number; faults?: FakeFault[]; record?: boolean }): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** The fake in its own process (`node --import tsx test/helpers/fake-provider.ts`), controlled over HTTP. */
export async function spawnFakeProvider(opts: { latencyMs?: number; record?: boolean } = {}): Promise<SpawnedFakeProvider> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', self, '--serve', JSON.stringify({ latencyMs: opts.latencyMs ?? 0, record: opts.record ?? false })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url: string = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /FAKE_PROVIDER_URL=(\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`fake provider exited with ${code}`)));
  });
  const call = async (path: string, body?: unknown) => {
    const r = await fetch(url + path, { method: body === undefined ? 'GET' : 'POST', body: body === undefined ? undefined : JSON.stringify(body) });
    return r.json();
  };
  return {
    url,
    child,
    env: () => fakeEnv(url),
    stats: () => call('/_fake/stats') as Promise<FakeStats>,
    configure: async (c) => void (await call('/_fake/config', c)),
    reset: async () => void (await call('/_fake/reset', {})),
    close: async () => {
      if (child.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    },
  };
}

// Run as a process: prints FAKE_PROVIDER_URL=... and serves until killed.
if (process.argv[2] === '--serve' && process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const opts = JSON.parse(process.argv[3] ?? '{}') as FakeProviderOptions;
  void startFakeProvider(opts).then((f) => {
    process.stdout.write(`FAKE_PROVIDER_URL=${f.url}\n`);
    process.on('SIGTERM', () => void f.close().then(() => process.exit(0)));
  });
}

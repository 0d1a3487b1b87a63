/**
 * The Entra token policy with a fake credential and a fake `next`: what each request carries, when the
 * credential is asked again, and that the token never leaks into hooks or errors.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import {
  createHttpHeaders,
  createPipelineRequest,
  type PipelineRequest,
  type PipelineResponse,
  type SendRequest,
} from "@azure/core-rest-pipeline";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLocalDevCredential } from "../../src/azure/credential.ts";
import { entraTokenPolicy, type TokenRenewalCause } from "../../src/azure/tokenPolicy.ts";

const SCOPE = "https://ml.azure.com/.default";
const MINUTE = 60_000;
const START = Date.UTC(2025, 0, 1, 12, 0, 0);

/** Hands out tok-1, tok-2, ... each with the lifetime the test chose; counts and can delay calls. */
function fakeCredential(
  options: {
    lifetimeMs?: number;
    refreshAfterMs?: number;
    /** When set, getToken waits for release() before answering. */
    gated?: boolean;
    /** Called before answering; may throw to make getToken fail. */
    before?: (call: number) => void;
  } = {},
) {
  const calls: Array<{ scopes: string | string[]; options: GetTokenOptions | undefined }> = [];
  const issued: string[] = [];
  const gates: Array<() => void> = [];
  const credential: TokenCredential = {
    async getToken(scopes, getTokenOptions) {
      calls.push({ scopes, options: getTokenOptions });
      const call = calls.length;
      if (options.gated) await new Promise<void>((resolve) => gates.push(resolve));
      options.before?.(call);
      const token = `tok-${call}-${Math.random().toString(36).slice(2)}`;
      issued.push(token);
      const now = Date.now();
      const accessToken: AccessToken = {
        token,
        expiresOnTimestamp: now + (options.lifetimeMs ?? 60 * MINUTE),
        ...(options.refreshAfterMs !== undefined
          ? { refreshAfterTimestamp: now + options.refreshAfterMs }
          : {}),
      };
      return accessToken;
    },
  };
  return {
    credential,
    calls,
    issued,
    release() {
      for (const gate of gates.splice(0)) gate();
    },
  };
}

interface Sent {
  readonly url: string;
  readonly authorization: string | undefined;
}

/** A fake rest of the pipeline: records what each attempt carried and answers with `status(sent)`. */
function fakeNext(status: (sent: Sent, index: number) => number | Promise<number> = () => 200) {
  const sent: Sent[] = [];
  const next: SendRequest = async (request: PipelineRequest): Promise<PipelineResponse> => {
    const record = { url: request.url, authorization: request.headers.get("Authorization") };
    sent.push(record);
    return { request, status: await status(record, sent.length - 1), headers: createHttpHeaders() };
  };
  return { next, sent };
}

function request(url = "https://endpoint.westeurope.inference.ml.azure.com/jobs", allowInsecure = false) {
  return createPipelineRequest({ url, method: "GET", allowInsecureConnection: allowInsecure });
}

function setup(credentialOptions: Parameters<typeof fakeCredential>[0] = {}, refreshBeforeExpiryMs?: number) {
  const fake = fakeCredential(credentialOptions);
  const renewals: unknown[][] = [];
  const policy = entraTokenPolicy({
    credential: fake.credential,
    scope: SCOPE,
    ...(refreshBeforeExpiryMs !== undefined ? { refreshBeforeExpiryMs } : {}),
    onRenewal: (...args: unknown[]) => {
      renewals.push(args);
    },
  });
  const causes = () => renewals.map((args) => args[0] as TokenRenewalCause);
  return { ...fake, policy, renewals, causes };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(START);
});
afterEach(() => {
  vi.useRealTimers();
});

describe("entraTokenPolicy", () => {
  it("gets one token for the scope and reuses it across requests", async () => {
    const t = setup();
    const { next, sent } = fakeNext();
    for (let i = 0; i < 5; i++) {
      vi.setSystemTime(START + i * 5 * MINUTE); // 20 minutes in all: far from expiry
      const response = await t.policy.sendRequest(request(), next);
      expect(response.status).toBe(200);
    }
    expect(t.calls).toHaveLength(1);
    expect(t.calls[0]?.scopes).toBe(SCOPE);
    expect(sent.map((s) => s.authorization)).toEqual(Array(5).fill(`Bearer ${t.issued[0]}`));
    expect(t.causes()).toEqual(["initial"]);
  });

  it("renews a token shorter-lived than twice the window halfway through its life, not on every request", async () => {
    const SECOND = 1000;
    const t = setup({ lifetimeMs: 20 * SECOND });
    const { next, sent } = fakeNext();
    for (let ms = 0; ms <= 25 * SECOND; ms += SECOND) {
      vi.setSystemTime(START + ms);
      await t.policy.sendRequest(request(), next);
    }
    // 26 requests over 25 s: the first token until 10 s, the second from 10 s to 20 s, the third from 20 s.
    expect(t.causes()).toEqual(["initial", "expiry", "expiry"]);
    expect(sent.map((s) => s.authorization?.split("-")[1])).toEqual([
      ...Array(10).fill("1"),
      ...Array(10).fill("2"),
      ...Array(6).fill("3"),
    ]);
  });

  it("renews once the token is within the refresh window of its expiry (default 5 minutes)", async () => {
    const t = setup({ lifetimeMs: 60 * MINUTE });
    const { next, sent } = fakeNext();
    await t.policy.sendRequest(request(), next);
    vi.setSystemTime(START + 55 * MINUTE - 1); // just outside the window: still the first token
    await t.policy.sendRequest(request(), next);
    expect(t.calls).toHaveLength(1);
    vi.setSystemTime(START + 55 * MINUTE); // 5 minutes before expiry
    await t.policy.sendRequest(request(), next);
    vi.setSystemTime(START + 56 * MINUTE);
    await t.policy.sendRequest(request(), next);

    expect(t.calls).toHaveLength(2);
    expect(t.causes()).toEqual(["initial", "expiry"]);
    expect(sent.map((s) => s.authorization)).toEqual([
      `Bearer ${t.issued[0]}`,
      `Bearer ${t.issued[0]}`,
      `Bearer ${t.issued[1]}`,
      `Bearer ${t.issued[1]}`,
    ]);
  });

  it("honours a custom refresh window and the credential's refreshAfterTimestamp", async () => {
    const custom = setup({ lifetimeMs: 60 * MINUTE }, 20 * MINUTE);
    const { next } = fakeNext();
    await custom.policy.sendRequest(request(), next);
    vi.setSystemTime(START + 40 * MINUTE - 1);
    await custom.policy.sendRequest(request(), next);
    expect(custom.calls).toHaveLength(1);
    vi.setSystemTime(START + 40 * MINUTE);
    await custom.policy.sendRequest(request(), next);
    expect(custom.causes()).toEqual(["initial", "expiry"]);

    vi.setSystemTime(START);
    const hinted = setup({ lifetimeMs: 60 * MINUTE, refreshAfterMs: 10 * MINUTE });
    await hinted.policy.sendRequest(request(), next);
    vi.setSystemTime(START + 10 * MINUTE - 1);
    await hinted.policy.sendRequest(request(), next);
    expect(hinted.calls).toHaveLength(1);
    vi.setSystemTime(START + 10 * MINUTE);
    await hinted.policy.sendRequest(request(), next);
    expect(hinted.causes()).toEqual(["initial", "expiry"]);
  });

  it("keeps using a still-valid token when a renewal in the refresh window fails, and retries it later", async () => {
    let failNext = false;
    const t = setup({
      lifetimeMs: 60 * MINUTE,
      before: () => {
        if (failNext) throw new Error("IMDS is briefly unavailable");
      },
    });
    const { next, sent } = fakeNext();
    await t.policy.sendRequest(request(), next);
    failNext = true;
    vi.setSystemTime(START + 56 * MINUTE);
    const response = await t.policy.sendRequest(request(), next);
    expect(response.status).toBe(200);
    expect(sent[1]?.authorization).toBe(`Bearer ${t.issued[0]}`);
    // Once expired, the failure is the request's.
    vi.setSystemTime(START + 60 * MINUTE);
    await expect(t.policy.sendRequest(request(), next)).rejects.toThrow("IMDS is briefly unavailable");
    expect(sent).toHaveLength(2);
    // The credential recovers: the next request renews.
    failNext = false;
    await t.policy.sendRequest(request(), next);
    expect(sent[2]?.authorization).toBe(`Bearer ${t.issued[1]}`);
    expect(t.causes()).toEqual(["initial", "expiry"]);
  });

  it("on a 401 renews once and retries once with the new token", async () => {
    const t = setup();
    // The service rejects the first token (revoked), accepts the second.
    const { next, sent } = fakeNext((s) => (s.authorization === `Bearer ${t.issued[0]}` ? 401 : 200));
    const response = await t.policy.sendRequest(request(), next);

    expect(response.status).toBe(200);
    expect(t.calls).toHaveLength(2);
    expect(t.causes()).toEqual(["initial", "unauthorized"]);
    expect(sent.map((s) => s.authorization)).toEqual([`Bearer ${t.issued[0]}`, `Bearer ${t.issued[1]}`]);
    // The renewed token is kept for later requests.
    await t.policy.sendRequest(request(), next);
    expect(sent[2]?.authorization).toBe(`Bearer ${t.issued[1]}`);
    expect(t.calls).toHaveLength(2);
  });

  it("returns a second 401 as is: no loop", async () => {
    const t = setup();
    const { next, sent } = fakeNext(() => 401);
    const response = await t.policy.sendRequest(request(), next);

    expect(response.status).toBe(401);
    expect(sent).toHaveLength(2);
    expect(t.calls).toHaveLength(2);
    expect(t.causes()).toEqual(["initial", "unauthorized"]);
    // The next request tries once more (one renewal), not forever.
    const again = await t.policy.sendRequest(request(), next);
    expect(again.status).toBe(401);
    expect(sent).toHaveLength(4);
    expect(t.causes()).toEqual(["initial", "unauthorized", "unauthorized"]);
  });

  it("shares one initial renewal between concurrent requests", async () => {
    const t = setup({ gated: true });
    const { next, sent } = fakeNext();
    const pending = Array.from({ length: 6 }, () => t.policy.sendRequest(request(), next));
    await vi.waitFor(() => expect(t.calls).toHaveLength(1));
    t.release();
    const responses = await Promise.all(pending);

    expect(responses.map((r) => r.status)).toEqual(Array(6).fill(200));
    expect(t.calls).toHaveLength(1);
    expect(t.causes()).toEqual(["initial"]);
    expect(new Set(sent.map((s) => s.authorization))).toEqual(new Set([`Bearer ${t.issued[0]}`]));
  });

  it("shares one expiry renewal between concurrent requests", async () => {
    const t = setup({ lifetimeMs: 60 * MINUTE });
    const { next, sent } = fakeNext();
    await t.policy.sendRequest(request(), next);
    vi.setSystemTime(START + 58 * MINUTE);
    const responses = await Promise.all(
      Array.from({ length: 6 }, () => t.policy.sendRequest(request(), next)),
    );

    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(t.calls).toHaveLength(2);
    expect(t.causes()).toEqual(["initial", "expiry"]);
    expect(sent.slice(1).map((s) => s.authorization)).toEqual(Array(6).fill(`Bearer ${t.issued[1]}`));
  });

  it("shares one 401 renewal between concurrent requests, even when their 401s arrive one after another", async () => {
    const t = setup();
    await t.policy.sendRequest(request(), fakeNext().next); // tok-1 cached
    // Three requests in flight with tok-1; the service has revoked it. Their 401s arrive at different times.
    const answers: Array<(status: number) => void> = [];
    const { next, sent } = fakeNext((s) =>
      s.authorization === `Bearer ${t.issued[0]}`
        ? new Promise<number>((resolve) => answers.push(resolve))
        : 200,
    );
    const pending = Array.from({ length: 3 }, () => t.policy.sendRequest(request(), next));
    await vi.waitFor(() => expect(answers).toHaveLength(3));
    for (const answer of answers) {
      answer(401);
      // Let this request's renewal finish before the next 401 comes in.
      await vi.waitFor(() => expect(t.calls).toHaveLength(2));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const responses = await Promise.all(pending);

    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(t.calls).toHaveLength(2);
    expect(t.causes()).toEqual(["initial", "unauthorized"]);
    expect(sent.filter((s) => s.authorization === `Bearer ${t.issued[1]}`)).toHaveLength(3);
  });

  it("refuses plain http unless the request allows an insecure connection", async () => {
    const t = setup();
    const { next, sent } = fakeNext();
    await expect(t.policy.sendRequest(request("http://endpoint.example/jobs"), next)).rejects.toThrow(
      /non-TLS \(http\)/,
    );
    expect(sent).toHaveLength(0);
    expect(t.calls).toHaveLength(0); // no token was even fetched

    const allowed = await t.policy.sendRequest(request("http://127.0.0.1:8080/jobs", true), next);
    expect(allowed.status).toBe(200);
    expect(sent[0]?.authorization).toBe(`Bearer ${t.issued[0]}`);
    await t.policy.sendRequest(request("HTTPS://ENDPOINT.EXAMPLE/jobs"), next);
    expect(sent).toHaveLength(2);
  });

  it("never gives the token to onRenewal", async () => {
    const t = setup({ lifetimeMs: 10 * MINUTE });
    const { next } = fakeNext((s, i) => (i === 1 ? 401 : s.authorization ? 200 : 500));
    await t.policy.sendRequest(request(), next); // initial
    await t.policy.sendRequest(request(), next); // 401 -> unauthorized
    vi.setSystemTime(START + 9 * MINUTE);
    await t.policy.sendRequest(request(), next); // expiry

    expect(t.renewals).toEqual([["initial"], ["unauthorized"], ["expiry"]]);
    const seen = JSON.stringify(t.renewals);
    expect(t.issued).toHaveLength(3);
    for (const token of t.issued) expect(seen).not.toContain(token);
  });

  it("never puts the token in an error message", async () => {
    const errors: Error[] = [];
    const capture = async (promise: Promise<unknown>) => {
      try {
        await promise;
      } catch (error) {
        errors.push(error as Error);
      }
    };
    // A token is cached, then plain http is refused.
    const t = setup();
    await t.policy.sendRequest(request(), fakeNext().next);
    await capture(t.policy.sendRequest(request("http://endpoint.example/jobs"), fakeNext().next));
    // A credential that answers nothing.
    const empty = entraTokenPolicy({
      credential: { getToken: async () => null },
      scope: SCOPE,
    });
    await capture(empty.sendRequest(request(), fakeNext().next));
    // The renewal after a 401 fails.
    const failing = setup({
      before: (call) => {
        if (call === 2) throw new Error("credential unavailable");
      },
    });
    await capture(failing.policy.sendRequest(request(), fakeNext(() => 401).next));

    expect(errors.map((e) => e.message)).toEqual([
      "refusing to send a bearer token over a non-TLS (http) connection",
      `the credential returned no token for scope ${SCOPE}`,
      "credential unavailable",
    ]);
    for (const error of errors) {
      for (const token of [...t.issued, ...failing.issued]) {
        expect(error.message).not.toContain(token);
        expect(String(error.stack)).not.toContain(token);
      }
    }
  });
});

describe("createLocalDevCredential", () => {
  it("hands out distinct opaque tokens with the chosen lifetime", async () => {
    const credential = createLocalDevCredential(30 * MINUTE);
    const first = await credential.getToken(SCOPE);
    const second = await credential.getToken(SCOPE);
    expect(first?.token).toMatch(/^local-dev\.[0-9a-f-]{36}$/);
    expect(second?.token).not.toBe(first?.token);
    expect(first?.expiresOnTimestamp).toBe(START + 30 * MINUTE);
  });
});

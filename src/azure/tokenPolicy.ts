import type { AccessToken, TokenCredential } from "@azure/core-auth";
import type {
  PipelinePolicy,
  PipelineRequest,
  PipelineResponse,
  SendRequest,
} from "@azure/core-rest-pipeline";

type AbortSignalLike = PipelineRequest["abortSignal"];

export type TokenRenewalCause = "initial" | "expiry" | "unauthorized";

export interface EntraTokenPolicyOptions {
  readonly credential: TokenCredential;
  readonly scope: string;
  /**
   * Renew this long before the token expires (tokens live about an hour), or halfway through the life of a
   * token shorter than twice this. Default 5 minutes.
   */
  readonly refreshBeforeExpiryMs?: number;
  /** Called each time a token is obtained; for the token_renewals_total metric. Never receives the token. */
  readonly onRenewal?: (cause: TokenRenewalCause) => void;
}

export const entraTokenPolicyName = "entraTokenPolicy";

function abortable<T>(promise: Promise<T>, signal: NonNullable<AbortSignalLike>): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error("the request was aborted"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error("the request was aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Puts an Entra ID bearer token on every request. Unlike the SDK's bearerTokenAuthenticationPolicy, it
 * (1) renews the token and retries once on a bare 401, which the batch endpoint answers without a
 * WWW-Authenticate challenge, and (2) lets a request flagged allowInsecureConnection (only the loopback
 * emulator: configuration refuses plain http elsewhere) through. Concurrent requests share one renewal.
 */
export function entraTokenPolicy(options: EntraTokenPolicyOptions): PipelinePolicy {
  const refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? 5 * 60 * 1000;
  let current: AccessToken | undefined;
  /** When `current` is to be renewed. */
  let refreshAt = 0;
  let renewing: Promise<AccessToken> | undefined;

  // The renewal is shared by every request waiting for it, so no single request's abort signal may end it;
  // a request that is aborted stops waiting, the renewal goes on for the others.
  const renew = (cause: TokenRenewalCause, abortSignal?: AbortSignalLike): Promise<AccessToken> => {
    renewing ??= options.credential
      .getToken(options.scope)
      .then((token) => {
        if (!token) throw new Error(`the credential returned no token for scope ${options.scope}`);
        current = token;
        // A token that lives less than twice the margin (short-lived tokens of a private authority) is
        // renewed halfway through its life, not on every request.
        const lifetimeMs = token.expiresOnTimestamp - Date.now();
        refreshAt =
          token.refreshAfterTimestamp ??
          token.expiresOnTimestamp - Math.min(refreshBeforeExpiryMs, Math.max(0, lifetimeMs / 2));
        options.onRenewal?.(cause);
        return token;
      })
      .finally(() => {
        renewing = undefined;
      });
    return abortSignal ? abortable(renewing, abortSignal) : renewing;
  };

  const validToken = (abortSignal?: AbortSignalLike): Promise<AccessToken> => {
    const token = current;
    if (!token) return renew("initial", abortSignal);
    if (Date.now() < refreshAt) return Promise.resolve(token);
    // Until it expires the old token still works: a failed renewal is tried again on the next request.
    return renew("expiry", abortSignal).catch((error: unknown) => {
      if (Date.now() < token.expiresOnTimestamp) return token;
      throw error;
    });
  };

  return {
    name: entraTokenPolicyName,
    async sendRequest(request: PipelineRequest, next: SendRequest): Promise<PipelineResponse> {
      if (!request.url.toLowerCase().startsWith("https://") && !request.allowInsecureConnection) {
        throw new Error("refusing to send a bearer token over a non-TLS (http) connection");
      }
      const token = await validToken(request.abortSignal);
      request.headers.set("Authorization", `Bearer ${token.token}`);
      const response = await next(request);
      if (response.status !== 401) return response;
      // The token may have been revoked or the clock skewed: renew once and try again. If another request
      // has renewed it since this one was sent, that renewal is the one to use.
      const renewed =
        current !== token
          ? await validToken(request.abortSignal)
          : await renew("unauthorized", request.abortSignal);
      request.headers.set("Authorization", `Bearer ${renewed.token}`);
      return next(request);
    },
  };
}

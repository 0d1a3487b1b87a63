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
  /** Renew this long before the token expires (tokens live about an hour). Default 5 minutes. */
  readonly refreshBeforeExpiryMs?: number;
  /** Called each time a token is obtained; for the token_renewals_total metric. Never receives the token. */
  readonly onRenewal?: (cause: TokenRenewalCause) => void;
}

export const entraTokenPolicyName = "entraTokenPolicy";

/**
 * Puts an Entra ID bearer token on every request. Unlike the SDK's bearerTokenAuthenticationPolicy, it
 * (1) renews the token and retries once on a bare 401, which the batch endpoint answers without a
 * WWW-Authenticate challenge, and (2) lets a request flagged allowInsecureConnection (only the loopback
 * emulator: configuration refuses plain http elsewhere) through. Concurrent requests share one renewal.
 */
export function entraTokenPolicy(options: EntraTokenPolicyOptions): PipelinePolicy {
  const refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? 5 * 60 * 1000;
  let current: AccessToken | undefined;
  let renewing: Promise<AccessToken> | undefined;

  const renew = (cause: TokenRenewalCause, abortSignal?: AbortSignalLike): Promise<AccessToken> => {
    renewing ??= options.credential
      .getToken(options.scope, abortSignal ? { abortSignal } : {})
      .then((token) => {
        if (!token) throw new Error(`the credential returned no token for scope ${options.scope}`);
        current = token;
        options.onRenewal?.(cause);
        return token;
      })
      .finally(() => {
        renewing = undefined;
      });
    return renewing;
  };

  const validToken = (abortSignal?: AbortSignalLike): Promise<AccessToken> => {
    if (!current) return renew("initial", abortSignal);
    const refreshAt = current.refreshAfterTimestamp ?? current.expiresOnTimestamp - refreshBeforeExpiryMs;
    return Date.now() >= refreshAt ? renew("expiry", abortSignal) : Promise.resolve(current);
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
      // The token may have been revoked or the clock skewed: renew once and try again.
      const renewed = await renew("unauthorized", request.abortSignal);
      request.headers.set("Authorization", `Bearer ${renewed.token}`);
      return next(request);
    },
  };
}

// Apollo Client for authgraph: the access token goes out as a bearer header;
// an `expired` answer triggers one refresh (shared by every operation waiting
// on it) and a single retry; any other refresh failure clears the tokens.
//
// Two modes, as the server runs: header mode keeps the refresh token here;
// cookie mode (REFRESH_TOKEN_COOKIE=on) leaves it in the HttpOnly cookie, so
// refresh and logout send no token and the fetch must carry cookies (in a
// browser `credentials: "include"`, which this client sets).

// Apollo Client 3 has no package "exports" map: Node needs the ESM entry files by name.
import {
  ApolloClient,
  ApolloLink,
  HttpLink,
  InMemoryCache,
  Observable,
  type FetchResult,
  type NormalizedCacheObject,
} from "@apollo/client/core/index.js";
import { onError } from "@apollo/client/link/error/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { createHash } from "node:crypto";

import { LOGOUT, REFRESH } from "./operations.js";

export interface Tokens {
  accessToken: string;
  /** Null in cookie mode: the refresh token lives in the cookie. */
  refreshToken: string | null;
}

export interface AuthClient {
  apollo: ApolloClient<NormalizedCacheObject>;
  tokens(): Tokens | null;
  setTokens(tokens: Tokens | null): void;
  /** How many refreshToken calls this client has made. */
  refreshCount(): number;
  /** Cookie mode: a new access token from the cookie alone (a page reload). */
  resume(): Promise<boolean>;
  logout(): Promise<void>;
}

export interface AuthClientOptions {
  /** Automatic persisted queries (hashes first, the query only when the server asks). */
  persistedQueries?: { useGETForHashedQueries: boolean };
  /** The server runs REFRESH_TOKEN_COOKIE=on; `fetch` must keep cookies. */
  cookieMode?: boolean;
  fetch?: typeof fetch;
}

/** A tab sharing the cookie refreshed first: the retry carries the newer cookie. */
const ROTATED_RETRIES = 2;


export function createAuthClient(uri: string, options: AuthClientOptions = {}): AuthClient {
  let tokens: Tokens | null = null;
  let refreshes = 0;
  let inFlight: Promise<boolean> | null = null;

  const cookieMode = options.cookieMode ?? false;
  const httpOnly = new HttpLink({
    uri,
    fetch: options.fetch ?? fetch,
    credentials: cookieMode ? "include" : "same-origin",
  });
  const http = options.persistedQueries
    ? createPersistedQueryLink({
        sha256: (text: string) => createHash("sha256").update(text).digest("hex"),
        useGETForHashedQueries: options.persistedQueries.useGETForHashedQueries,
      }).concat(httpOnly)
    : httpOnly;

  // Refreshing goes straight to the server, outside the link chain below, so
  // it is never itself retried or refreshed.
  const refreshClient = new ApolloClient({ link: http, cache: new InMemoryCache() });

  async function refreshNow(): Promise<boolean> {
    const current = tokens;
    if (!current && !cookieMode) return false;
    for (let attempt = 0; ; attempt += 1) {
      refreshes += 1;
      try {
        const { data } = await refreshClient.mutate({
          mutation: REFRESH,
          // Null in cookie mode: the server reads the cookie.
          variables: { refreshToken: cookieMode ? null : current?.refreshToken },
          fetchPolicy: "no-cache",
        });
        if (!data) throw new Error("no data");
        tokens = { accessToken: data.refreshToken.accessToken, refreshToken: data.refreshToken.refreshToken ?? null };
        return true;
      } catch (err) {
        const reason = (err as { graphQLErrors?: { extensions?: { reason?: unknown } }[] }).graphQLErrors?.[0]
          ?.extensions?.reason;
        if (reason === "rotated" && attempt < ROTATED_RETRIES) {
          await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
          continue;
        }
        // Revoked, reused, expired or unreachable: this session is over.
        tokens = null;
        return false;
      }
    }
  }

  /** One refresh at a time: every caller meanwhile waits for the same one. */
  function refreshOnce(): Promise<boolean> {
    inFlight ??= refreshNow().finally(() => {
      inFlight = null;
    });
    return inFlight;
  }

  const bearer = new ApolloLink((operation, forward) => {
    const accessToken = tokens?.accessToken;
    operation.setContext(({ headers = {} }: { headers?: Record<string, string> }) => ({
      sentWith: accessToken,
      headers: accessToken ? { ...headers, Authorization: `Bearer ${accessToken}` } : headers,
    }));
    return forward(operation);
  });

  const refreshOnExpiry = onError(({ graphQLErrors, operation, forward }) => {
    const expired = graphQLErrors?.some(
      (e) => e.extensions?.code === "UNAUTHENTICATED" && e.extensions?.reason === "expired",
    );
    const context = operation.getContext();
    if (!expired || context.retried) return;
    return new Observable<FetchResult>((observer) => {
      // Another operation may have refreshed since this one was sent.
      const alreadyNew = tokens !== null && tokens.accessToken !== context.sentWith;
      const ready = alreadyNew ? Promise.resolve(true) : refreshOnce();
      ready.then(
        (ok) => {
          if (!ok) {
            observer.error(new Error("the session has ended: log in again"));
            return;
          }
          operation.setContext({ retried: true });
          forward(operation).subscribe(observer);
        },
        (err) => observer.error(err),
      );
    });
  });

  const apollo = new ApolloClient({
    link: ApolloLink.from([refreshOnExpiry, bearer, http]),
    cache: new InMemoryCache(),
    defaultOptions: {
      query: { fetchPolicy: "network-only", errorPolicy: "none" },
      watchQuery: { fetchPolicy: "network-only" },
    },
  });

  return {
    apollo,
    tokens: () => tokens,
    setTokens: (next) => {
      tokens = next;
    },
    refreshCount: () => refreshes,
    resume: () => refreshOnce(),
    async logout() {
      const current = tokens;
      tokens = null;
      if (cookieMode) {
        // The server ends the cookie's session and clears the cookie.
        await refreshClient.mutate({ mutation: LOGOUT, variables: { refreshToken: null } });
      } else if (current?.refreshToken) {
        await refreshClient.mutate({ mutation: LOGOUT, variables: { refreshToken: current.refreshToken } });
      }
      await apollo.clearStore();
    },
  };
}

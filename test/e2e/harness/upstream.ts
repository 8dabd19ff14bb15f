/** @module An upstream registry in one of three auth modes, with a token server when it needs one. */
import { type Credentials, type Registry, startRegistry } from './registry.js';
import { startTokenServer, type TokenServer } from './token-server.js';

export type AuthMode = 'none' | 'htpasswd' | 'token';

export const TEST_CREDENTIALS: Credentials = { username: 'e2e-user', password: 'e2e-secret' };

export interface Upstream {
  mode: AuthMode;
  registry: Registry;
  /** Present in token mode; it refuses anonymous requests, so every token needs `creds`. */
  tokenServer?: TokenServer;
  /** What a client must present; undefined when the registry is open. */
  creds?: Credentials;
  stop(): Promise<void>;
}

export async function startUpstream(
  mode: AuthMode,
  creds: Credentials = TEST_CREDENTIALS,
  /** The address the registry and its token server listen on (default 127.0.0.1). */
  host?: string,
): Promise<Upstream> {
  const at = host ? { host } : {};
  if (mode === 'none') {
    const registry = await startRegistry(at);
    return { mode, registry, stop: () => registry.stop() };
  }
  if (mode === 'htpasswd') {
    const registry = await startRegistry({ auth: { htpasswd: creds }, ...at });
    return { mode, registry, creds, stop: () => registry.stop() };
  }
  const tokenServer = await startTokenServer({ credentials: creds, ...at });
  const registry = await startRegistry({ auth: { token: tokenServer }, ...at }).catch(
    async (error: unknown) => {
      await tokenServer.stop();
      throw error;
    },
  );
  return {
    mode,
    registry,
    tokenServer,
    creds,
    async stop() {
      await registry.stop();
      await tokenServer.stop();
    },
  };
}

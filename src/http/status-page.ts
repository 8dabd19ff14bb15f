/**
 * @module `GET /_pullcache/`: the status page for operators, and `GET /_pullcache/api/status`, the
 * JSON it draws (also for scripts and tests). Behind the same client access rules as /v2.
 */
import type { Hono } from 'hono';
import type { StatusReport } from '../status/status-report.js';
import type { Env } from './env.js';
import { STATUS_PAGE_HTML } from './status-page-html.js';

export interface StatusPageDeps {
  report(): Promise<StatusReport>;
  /** Drops from the store's counts what another process removed. */
  syncRemovals(): Promise<void>;
}

export function addStatusPage(app: Hono<Env>, deps: StatusPageDeps): void {
  // The page fetches `api/status` relative to itself: it must be served with the trailing slash.
  app.get('/_pullcache', (c) => c.redirect('/_pullcache/', 301));
  app.get('/_pullcache/', (c) =>
    c.html(STATUS_PAGE_HTML, 200, {
      'cache-control': 'no-store',
      'content-security-policy':
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
    }),
  );
  app.get('/_pullcache/api/status', async (c) =>
    c.json(await deps.report(), 200, { 'cache-control': 'no-store' }),
  );
}

/**
 * @module Types for the undici files pullcache imports by path (http-agent.ts, address-guard.ts,
 * http/web-globals.ts):
 * undici has no `exports` map, so they are importable, but its types describe only the index.
 */
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';

  const AgentClass: typeof Agent;
  export = AgentClass;
}

declare module 'undici/lib/api/api-request.js' {
  import type { Dispatcher } from 'undici';

  /** Dispatcher.prototype.request, called with a dispatcher as `this`. */
  function request(this: Dispatcher, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  export = request;
}

declare module 'undici/lib/core/connect.js' {
  import type { buildConnector } from 'undici';

  const build: typeof buildConnector;
  export = build;
}

declare module 'undici/lib/web/fetch/headers.js' {
  export { Headers } from 'undici';
}

declare module 'undici/lib/web/fetch/request.js' {
  export { Request } from 'undici';
}

declare module 'undici/lib/web/fetch/response.js' {
  export { Response } from 'undici';
}

declare module 'undici/lib/web/fetch/formdata.js' {
  export { FormData } from 'undici';
}

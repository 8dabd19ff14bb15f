/**
 * @module One undici, not two: installs the undici pullcache already carries as the process's
 * Web-standard Headers, Request, Response and FormData, as undici's own `install()` does (it is not
 * imported from undici's index, which loads all of undici). Imported first by the entry points,
 * before @hono/node-server reads `global.Request` and `global.Response` at import: node's own
 * globals are getters that load node's bundled copy of undici, a second one (~2 MB resident, more
 * than this module loads). `fetch` is left alone: pullcache's server code never calls it.
 */
import type { FormData, Headers, Request, Response } from 'undici';
import { FormData as UndiciFormData } from 'undici/lib/web/fetch/formdata.js';
import { Headers as UndiciHeaders } from 'undici/lib/web/fetch/headers.js';
import { Request as UndiciRequest } from 'undici/lib/web/fetch/request.js';
import { Response as UndiciResponse } from 'undici/lib/web/fetch/response.js';

const classes: {
  Headers: typeof Headers;
  Request: typeof Request;
  Response: typeof Response;
  FormData: typeof FormData;
} = { Headers: UndiciHeaders, Request: UndiciRequest, Response: UndiciResponse, FormData: UndiciFormData };

for (const [name, value] of Object.entries(classes)) {
  // Node's are configurable lazy getters: redefining them as values never runs the getter.
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

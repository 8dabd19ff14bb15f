/** @module Test-side HTTP: raw requests (fetch would resolve `..` first) and typed reads of JSON answers. */
import { request } from 'node:http';

export function rawRequest(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string | string[]> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(base, { method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface OciErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

/** The first OCI error of an error answer. */
export async function firstError(response: Response): Promise<OciErrorBody['errors'][number]> {
  const body = (await response.json()) as OciErrorBody;
  return body.errors[0]!;
}

export async function jsonOf<T = Record<string, unknown>>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

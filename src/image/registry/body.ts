// Reading registry response bodies without trusting them: small answers
// (manifests, tokens, error bodies) are capped while streaming, whatever
// Content-Length claims, and every body must keep moving.

import { KilnError } from "../../errors.js";

/**
 * Read a whole (small) body, refusing more than `cap` bytes — counted while
 * streaming, whatever Content-Length says.
 */
export async function readBody(res: Response, cap: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > cap) {
    await res.body?.cancel();
    throw tooLarge(what, cap);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > cap) {
        await reader.cancel();
        throw tooLarge(what, cap);
      }
      chunks.push(Buffer.from(value));
    }
  }
  return Buffer.concat(chunks);
}

function tooLarge(what: string, cap: number): KilnError {
  return new KilnError("KILN_E_UNSAFE", `${what} is larger than ${cap} bytes`, {
    hint: "the registry sent far more than such an answer can hold; nothing was stored. Check the registry and the reference",
    details: [{ where: what, message: "over the size cap" }],
  });
}

/**
 * The response with a body that fails once no byte arrived for `idleMs`
 * (a registry that stops sending mid-body would otherwise hang kiln forever).
 */
export function withIdleTimeout(res: Response, ac: AbortController, idleMs: number, registry: string): Response {
  // A null-body status cannot be rebuilt with a body (and has none to wait for).
  if (!res.body || [101, 204, 205, 304].includes(res.status)) return res;
  const reader = res.body.getReader();
  let timer: NodeJS.Timeout | undefined;
  // Armed only while the reader waits for the registry, so a slow consumer is never blamed on it.
  const arm = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const err = new KilnError("KILN_E_REGISTRY", `${registry} stopped sending (nothing for ${idleMs} ms)`, { hint: "the registry or the network stalled; retry" });
      controller.error(err);
      ac.abort(err);
      void reader.cancel().catch(() => undefined);
    }, idleMs);
    timer.unref();
  };
  const body = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      arm(controller);
      try {
        const { done, value } = await reader.read();
        clearTimeout(timer);
        if (done) {
          controller.close();
          return;
        }
        controller.enqueue(value);
      } catch (e) {
        clearTimeout(timer);
        controller.error(e);
      }
    },
    cancel: async (reason) => {
      clearTimeout(timer);
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}


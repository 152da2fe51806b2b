/**
 * What limitedFetch reads off a request before it acquires: whether the provider counts the call
 * at all, whether the endpoint generates tokens, how the provider counts them, the JSON body and
 * its model, and an estimate's output fitted to what the limits can hold. Pure: no I/O but
 * reading a Request's body.
 */
import type { Policy } from '../limiter/types.js';
import type { TokenEstimate } from './estimate.js';

/**
 * fitOutput lowers the output part of an estimate to what the policy's limits can hold at all:
 * `max_tokens: 16000` against 8,000 output tokens a minute books 8,000 (and the settle charges
 * what the call really used), where acquiring 16,000 could never succeed. The output is the
 * most the call may use, not what it will; the input is what it sends, and is never lowered: an
 * input no limit can hold still fails with CostExceedsCapacityError.
 */
export function fitOutput(tokens: TokenEstimate, policy: Policy): TokenEstimate {
  let output = tokens.outputTokens;
  for (const l of policy.limits) {
    if (l.dimension === 'outputTokens') output = Math.min(output, l.capacity);
    else if (l.dimension === 'tokens')
      output = Math.min(output, Math.max(0, l.capacity - tokens.inputTokens));
  }
  return output === tokens.outputTokens ? tokens : { ...tokens, outputTokens: output };
}

/** The default of {@link LimitedFetchOptions.accounting} for `url`. */
export function accountingOf(url: string): 'max' | 'usage' {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'max';
  }
  return u.hostname === 'api.anthropic.com' || /\/v1\/messages\/?$/.test(u.pathname)
    ? 'usage'
    : 'max';
}

/**
 * generates: whether the URL is an endpoint that generates or embeds (and so uses tokens the
 * provider counts): `/chat/completions`, `/completions`, `/responses`, `/messages`,
 * `/embeddings`, at the end of the path (Azure's deployment paths included). Others
 * (`/messages/count_tokens`, `/responses/input_tokens`, `/moderations`, `/files`) are counted as
 * requests only when their answer tells no usage.
 */
export function generates(url: string): boolean {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return true;
  }
  return /\/(chat\/completions|completions|responses|messages|embeddings)\/?$/.test(path);
}

/**
 * isCounted: whether a call is one the provider counts. Only http(s) calls are, and of those not
 * a GET of the model list or of one model (`/models`, `/models/{id}`), which providers do not
 * count against the limits tollgate keeps.
 */
export function isCounted(url: string, method: string): boolean {
  if (!/^https?:/i.test(url)) return false;
  if (method.toUpperCase() !== 'GET') return true;
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return true;
  }
  return !/\/models(\/[^/]+)?\/?$/.test(path);
}

// The parsed JSON body of a call, or undefined: a string body (or a Request's) that parses.
export async function jsonBody(
  input: string | URL | Request,
  init: RequestInit | undefined,
): Promise<unknown> {
  let text: string | undefined;
  const body = init?.body;
  if (typeof body === 'string') text = body;
  else if (body instanceof Uint8Array || body instanceof ArrayBuffer) text = utf8(body);
  else if (body instanceof Blob && !(body instanceof File) && /json/.test(body.type || 'json'))
    text = await body.text().catch(() => undefined);
  else if (body == null && input instanceof Request && input.body !== null) {
    text = await input
      .clone()
      .text()
      .catch(() => undefined);
  }
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The bytes of a body as text, or undefined when they are not UTF-8. */
function utf8(bytes: Uint8Array | ArrayBuffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * modelOf is the default key of a call: the body's `model`, else the deployment of an Azure
 * OpenAI URL (`/openai/deployments/{name}/...`, where the model is in the path), else
 * `'default'` (an upload's form data, a body that is not JSON).
 */
export function modelOf(body: unknown, url: string): string {
  const model =
    typeof body === 'object' && body !== null ? (body as { model?: unknown }).model : undefined;
  if (typeof model === 'string' && model.length > 0) return model;
  const deployment = /\/deployments\/([^/?#]+)/.exec(url)?.[1];
  if (deployment === undefined) return 'default';
  try {
    return decodeURIComponent(deployment);
  } catch {
    return deployment; // a malformed escape: the path segment as it is
  }
}

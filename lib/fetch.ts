import { FormData as UndiciFormData, Request as UndiciRequest, fetch as undiciFetch, type Dispatcher } from 'undici'

/** What `fetch()` accepts: a URL, undici's Request, or any WHATWG Request (Node's global one included). */
export type FetchInput = Parameters<typeof undiciFetch>[0] | globalThis.Request

/** The options of `fetch()`: undici's `RequestInit`, whose body may also be made by Node's global classes (`FormData`). */
export type FetchInit = Omit<NonNullable<Parameters<typeof undiciFetch>[1]>, 'body'> & {
  /**
   * The request body: anything undici's `fetch` takes, and Node's global `FormData` too (any body the
   * platform's `Response` takes: named through it, not the DOM's `BodyInit`, so no DOM lib is needed).
   */
  body?: NonNullable<Parameters<typeof undiciFetch>[1]>['body'] | ConstructorParameters<typeof globalThis.Response>[0]
}

function isRequestLike(input: unknown): input is globalThis.Request {
  return (
    typeof input === 'object' &&
    input !== null &&
    typeof (input as Request).url === 'string' &&
    typeof (input as Request).method === 'string' &&
    typeof (input as Request).headers?.forEach === 'function'
  )
}

/**
 * A FormData of another undici copy (Node's global one) as undici's own:
 * undici's fetch recognises only its own FormData class, and would send
 * another as the text `[object FormData]`. Blobs and files are Node's in
 * both copies and carry over as they are.
 */
function ownBody(body: unknown): unknown {
  if (body instanceof UndiciFormData || Object.prototype.toString.call(body) !== '[object FormData]') return body
  const form = new UndiciFormData()
  for (const [name, value] of body as FormData) form.append(name, value)
  return form
}

/** WHATWG fetch over a dispatcher, for inputs and bodies of any undici copy. */
export function fetchThrough(dispatcher: Dispatcher, input: FetchInput, init: FetchInit = {}): ReturnType<typeof undiciFetch> {
  const own = (init?.body === undefined ? init : { ...init, body: ownBody(init.body) }) as FetchInit
  if (input instanceof UndiciRequest || !isRequestLike(input)) {
    return undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...own, dispatcher } as Parameters<typeof undiciFetch>[1])
  }
  // A Request from another fetch implementation (Node's global one, msw's bypass()):
  // undici only recognises its own class (nodejs/undici#2155), so carry its parts over.
  const { url, method, headers, body: requestBody, signal, redirect } = input
  const withBody = requestBody !== null && method !== 'GET' && method !== 'HEAD'
  return undiciFetch(url, {
    method,
    headers: [...headers],
    signal,
    redirect,
    ...(withBody ? { body: requestBody, duplex: 'half' } : {}),
    ...own,
    dispatcher,
  } as Parameters<typeof undiciFetch>[1])
}

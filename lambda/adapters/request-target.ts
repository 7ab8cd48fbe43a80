/**
 * Splits an HTTP request target into path and query string. Origin-form ("/path?q") is the usual
 * case; absolute-form ("http://host/path?q") keeps only path and query; anything unparsable ("*") is "/".
 */
export function splitTarget(target: string | undefined): { path: string; query: string } {
  let value = target ?? '/';
  if (!value.startsWith('/')) {
    try {
      const url = new URL(value);
      value = url.pathname + url.search;
    } catch {
      value = '/';
    }
  }
  const q = value.indexOf('?');
  return q === -1 ? { path: value, query: '' } : { path: value.slice(0, q), query: value.slice(q + 1) };
}

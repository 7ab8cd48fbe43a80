// Resolve hook for runtime-sdk-hook.mjs (runs on the loader thread).
import { pathToFileURL } from 'node:url';

let root;
export function initialize(data) {
  root = data?.root;
}

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    if (!root || !specifier.startsWith('@aws-sdk/') || error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    return next(specifier, { ...context, parentURL: pathToFileURL(`${root}/node_modules/.runtime-sdk.mjs`).href });
  }
}
